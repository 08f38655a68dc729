//! `chronicle-sim`: the device simulator. The patient and device models are in the library
//! (`chronicle_sim`); publishing over MQTT, scenarios, fault injection, load mode and
//! provisioning are coming, so for now this binary says so.

fn main() {
    eprintln!(
        "chronicle-sim: the patient and device models are ready (see docs/simulator.md and \
         `cargo run -p chronicle-sim --example persona_table --release`); the MQTT modes \
         (publishing, scenarios, fault injection, load) are coming. Until then publish \
         readings with any MQTT client as shown in docs/protocol.md."
    );
    std::process::exit(2);
}
