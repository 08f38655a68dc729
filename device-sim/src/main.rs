//! `chronicle-sim`: the device simulator. The physiological models, scenarios and load mode
//! arrive with the simulator issue; until then this binary only says so.

fn main() {
    eprintln!(
        "chronicle-sim: the simulator is not built yet. Publish readings with any MQTT client \
         as shown in docs/protocol.md."
    );
    std::process::exit(2);
}
