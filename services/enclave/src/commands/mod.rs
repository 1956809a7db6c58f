pub mod admin;
pub mod audit;
pub mod bench;
pub mod generate;
pub mod migrate;
pub mod serve;
