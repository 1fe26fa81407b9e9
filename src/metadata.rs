//! The on-disk GEOM::MULTIPATH label (placeholder: being written).
