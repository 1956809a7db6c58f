//! `cargo run --release -p enclave-policy --example bench`: prints the policy bench as JSON lines.
fn main() {
    enclave_policy::bench::run(&mut |f| println!("{}", f.to_json_line()));
}
