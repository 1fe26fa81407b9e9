//! A process's I/O at the end of a device follows `g_io_check`: an offset
//! past the end is EIO, a request running past the end is cut there (a
//! short read or write), one starting at the end moves nothing. On a raw
//! path and through a multipath device, under both schedulers.

use geom_sim::{Access, LunConfig, Mode, Sim, SimConfig, EINVAL, EIO};

const SIZE: u64 = 1 << 20;

fn check(sim: &Sim, name: &str, size: u64) {
    let dev = sim.open(name, Access::new(1, 1, 0)).unwrap();
    assert_eq!(dev.size().map(|s| s.0), Some(size), "{name}");
    let last = size - 512;
    dev.write(last - 512, &[7; 1024]).unwrap();
    // Inside: everything.
    assert_eq!(dev.read(last - 512, 1024).unwrap(), vec![7; 1024]);
    // Running past the end: the part before it.
    assert_eq!(dev.read(last, 4096).unwrap(), vec![7; 512], "{name}");
    assert_eq!(dev.pwrite(last, &[9; 2048]), Ok(512), "{name}");
    assert_eq!(dev.write(last, &[9; 1024]), Err(EIO), "{name}: cut short");
    assert_eq!(dev.read(last, 512).unwrap(), vec![9; 512]);
    // At the end: nothing, no error.
    assert_eq!(dev.read(size, 512), Ok(vec![]), "{name}");
    assert_eq!(dev.pwrite(size, &[1; 512]), Ok(0), "{name}");
    // Past it: EIO, whatever the length.
    assert_eq!(dev.read(size + 512, 512), Err(EIO), "{name}");
    assert_eq!(dev.pwrite(size + 4096, &[1; 512]), Err(EIO), "{name}");
    // Misaligned requests are refused before any bounds check.
    assert_eq!(dev.read(size + 1, 512), Err(EINVAL), "{name}");
    dev.close().unwrap();
}

#[test]
fn io_at_the_end_of_a_device() {
    for mode in [Mode::Deterministic, Mode::Threaded] {
        let sim = Sim::new(SimConfig::new(mode, 3));
        sim.add_lun(LunConfig::new(&["da0", "da1"], SIZE)).unwrap();
        sim.load_multipath().unwrap();
        sim.run_until_idle();
        check(&sim, "da0", SIZE);
        sim.gmultipath(&["create", "mp", "da0", "da1"]).unwrap();
        sim.run_until_idle();
        // A manual device: the whole LUN.
        check(&sim, "multipath/mp", SIZE);
        sim.gmultipath(&["destroy", "mp"]).unwrap();
        sim.run_until_idle();
        sim.finish().assert_clean();
    }
}
