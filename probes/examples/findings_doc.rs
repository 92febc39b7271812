//! Prints docs/findings.md from the probe registry.
fn main() {
    print!("{}", probes::registry::findings_markdown());
}
