//! GEOM simulator (being written)
