//! Side by side with checkov (PyPI, the TEST command installs it into the tools cache and
//! sets `LOOKOUT_CHECKOV`): on the same manifests, every issue checkov reports for a check
//! that overlaps one of Lookout's is found by Lookout too, on the same object — and on the
//! careful objects, where checkov finds none of them, Lookout raises none either.
//!
//! The overlap (docs/kubernetes.md): checkov's checks that Lookout deliberately does not
//! make are left out — CPU limits (CKV_K8S_11: they throttle; Lookout asks for requests and
//! a memory limit), `imagePullPolicy: Always` on a pinned tag (CKV_K8S_15: Lookout asks for
//! it only on a mutable tag), digests, capabilities, seccomp, high UIDs, NetworkPolicies.

use probes::kubernetes::manifests;
use std::collections::BTreeSet;

/// checkov's check → Lookout's code.
const OVERLAP: &[(&str, &str)] = &[
    ("CKV_K8S_8", "K8S_MF_PROBES"),
    ("CKV_K8S_9", "K8S_MF_PROBES"),
    ("CKV_K8S_10", "K8S_MF_RESOURCES"),
    ("CKV_K8S_12", "K8S_MF_RESOURCES"),
    ("CKV_K8S_13", "K8S_MF_RESOURCES"),
    ("CKV_K8S_14", "K8S_MF_IMAGE_TAG"),
    ("CKV_K8S_16", "K8S_MF_PRIVILEGE"),
    ("CKV_K8S_20", "K8S_MF_PRIVILEGE"),
    ("CKV_K8S_22", "K8S_MF_READONLY_ROOT"),
    ("CKV_K8S_23", "K8S_MF_RUN_AS_ROOT"),
];

#[test]
fn every_overlapping_checkov_issue_is_found_by_lookout() {
    let checkov = std::env::var("LOOKOUT_CHECKOV")
        .expect("LOOKOUT_CHECKOV (checkov from PyPI) is set by scripts/test");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/manifests-vs-checkov.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let out = std::process::Command::new(&checkov)
        .args([
            "-f",
            path,
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
        ])
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("checkov runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov's JSON: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let reports = match json {
        serde_json::Value::Array(a) => a,
        one => vec![one],
    };
    // (Lookout code, "Kind/name") for every overlapping check checkov failed.
    let mut want = BTreeSet::new();
    let mut checked_objects = BTreeSet::new();
    for r in &reports {
        for c in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = c["check_id"].as_str().unwrap_or_default();
            let resource = c["resource"].as_str().unwrap_or_default();
            // "Deployment.shop.careless" → "Deployment/careless".
            let mut parts = resource.splitn(3, '.');
            let (kind, _ns, name) = (
                parts.next().unwrap_or(""),
                parts.next(),
                parts.next().unwrap_or(""),
            );
            checked_objects.insert(resource.to_string());
            if let Some((_, code)) = OVERLAP.iter().find(|(ck, _)| *ck == id) {
                want.insert((code.to_string(), format!("{kind}/{name}")));
            }
        }
        for c in r["results"]["passed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            checked_objects.insert(c["resource"].as_str().unwrap_or_default().to_string());
        }
    }
    assert!(want.len() >= 14, "the fixture gives checkov work: {want:?}");
    assert!(
        checked_objects.iter().any(|o| o.contains("careful")),
        "checkov read the careful one"
    );
    let (_, found) = manifests::check_text(&text).unwrap();
    let got: BTreeSet<(String, String)> = found
        .iter()
        .map(|f| (f.code.to_string(), f.object.clone()))
        .collect();
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "checkov found, Lookout did not: {missing:?}"
    );
    // Where checkov finds none of the overlapping issues, neither does Lookout.
    let overlap_codes: BTreeSet<&str> = OVERLAP.iter().map(|(_, c)| *c).collect();
    let extra: Vec<_> = got
        .iter()
        .filter(|(code, obj)| {
            overlap_codes.contains(code.as_str()) && !want.contains(&(code.clone(), obj.clone()))
        })
        .collect();
    assert!(
        extra.is_empty(),
        "Lookout found, checkov did not (overlapping checks): {extra:?}"
    );
}
