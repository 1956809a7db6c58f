pub mod admin;
pub mod bench;
pub mod generate;
pub mod migrate;
pub mod serve;
