//! The dashboard bundle (`dashboards/dist`) is compiled into the binary by `include_dir!`,
//! which does not tell cargo to rebuild when those files change; this does.

fn main() {
    println!("cargo:rerun-if-changed=../../dashboards/dist");
}
