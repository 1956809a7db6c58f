//! Building blocks of decoder layers.

pub mod attention;
pub mod linear;
pub mod rope;
