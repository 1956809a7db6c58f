pub mod bench;
pub mod generate;
