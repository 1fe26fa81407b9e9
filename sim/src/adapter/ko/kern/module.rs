//! The module registry (`kern_module.c`): modules the loader registered
//! from the file's `MDT_MODULE` metadata, and `module_register_init`, the
//! SYSINIT that sends them `MOD_LOAD`.

use std::ffi::{c_int, c_void};
use std::sync::Mutex;

use crate::ko::kstructs::{modeventhand_t, moduledata};
use crate::ko::{current, current_plat, Outcome};
use crate::util::lock;

use super::{console_line, malloc::cstr, panic_now, EBUSY, EEXIST, EOPNOTSUPP};

/// `enum modeventtype`.
pub const MOD_LOAD: c_int = 0;
pub const MOD_UNLOAD: c_int = 1;
pub const MOD_SHUTDOWN: c_int = 2;
pub const MOD_QUIESCE: c_int = 3;

/// One registered module (`struct module`).
#[derive(Clone, Debug)]
pub struct ModEntry {
    pub name: String,
    pub evhand: modeventhand_t,
    pub priv_: usize,
    /// The stand-in `module_t` the handler receives.
    pub handle: usize,
}

/// The registry of one emulated kernel.
#[derive(Default)]
pub struct Modules {
    list: Mutex<Vec<ModEntry>>,
    /// Stand-in `struct module`s, kept until the instance goes (boxed:
    /// their addresses must not move when the vector grows).
    #[allow(clippy::vec_box)]
    handles: Mutex<Vec<Box<[u64; 8]>>>,
}

impl Modules {
    /// `module_register(data, file)`.
    ///
    /// # Safety
    /// `data` points to the module's `moduledata_t`.
    pub unsafe fn register(&self, data: *const moduledata) -> Result<String, c_int> {
        // SAFETY: per the contract.
        let (name, evhand, priv_) = unsafe { (cstr((*data).name), (*data).evhand, (*data).priv_) };
        let mut g = lock(&self.list);
        if g.iter().any(|m| m.name == name) {
            return Err(EEXIST);
        }
        let mut h = lock(&self.handles);
        h.push(Box::new([0u64; 8]));
        let handle = h.last().map_or(0, |b| b.as_ptr() as usize);
        g.push(ModEntry {
            name: name.clone(),
            evhand,
            priv_: priv_ as usize,
            handle,
        });
        Ok(name)
    }

    pub fn lookup(&self, name: &str) -> Option<ModEntry> {
        lock(&self.list).iter().find(|m| m.name == name).cloned()
    }

    /// `module_release` of the last reference.
    pub fn release(&self, name: &str) {
        lock(&self.list).retain(|m| m.name != name);
    }

    /// Every registered module, in registration order.
    pub fn all(&self) -> Vec<ModEntry> {
        lock(&self.list).clone()
    }
}

/// `MOD_EVENT(mod, what)`: the module's handler, or `modevent_nop`.
pub fn event(m: &ModEntry, what: c_int) -> c_int {
    let Some(h) = m.evhand else {
        return match what {
            MOD_LOAD => 0,
            MOD_UNLOAD => EBUSY,
            _ => EOPNOTSUPP,
        };
    };
    let (handle, priv_) = (m.handle, m.priv_);
    let mut r = 0;
    let outcome = crate::ko::guarded(&mut || {
        // SAFETY: h is the module's event handler, called with the
        // arguments kern_module.c passes.
        r = unsafe { h(handle as *mut _, what, priv_ as *mut c_void) };
    });
    match outcome {
        Outcome::Returned => r,
        _ => super::ENXIO_PANICKED,
    }
}

/// `module_register_init(data)`: the SYSINIT of `DECLARE_MODULE`.
pub(super) unsafe extern "C" fn kpi_module_register_init(arg: *const c_void) {
    let data = arg as *const moduledata;
    // SAFETY: the SYSINIT's argument is the module's moduledata_t.
    let name = unsafe { cstr((*data).name) };
    let k = current();
    let Some(m) = k.kern.modules.lookup(&name) else {
        return panic_now(format!(
            "module_register_init: module named {name} not found"
        ));
    };
    let error = event(&m, MOD_LOAD);
    if error != 0 {
        event(&m, MOD_UNLOAD);
        k.kern.modules.release(&name);
        console_line(
            &current_plat(),
            format!(
                "module_register_init: MOD_LOAD ({name}, {:#x}, {:#x}) error {error}",
                m.evhand.map_or(0, |h| h as usize),
                m.priv_
            ),
        );
    }
}
