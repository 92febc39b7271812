//! The one place probes are registered. The catalogue API, the pages and the runner all
//! read this list, so a new probe is one module plus one line here.

use crate::framework::Probe;

static REDIS: crate::redis::probe::RedisProbe = crate::redis::probe::RedisProbe;
static POSTGRES: crate::postgres::probe::PostgresProbe = crate::postgres::probe::PostgresProbe;
static KAFKA_LAG: crate::kafka::lag::KafkaLagProbe = crate::kafka::lag::KafkaLagProbe;
static KUBERNETES: crate::kubernetes::probe::KubernetesProbe =
    crate::kubernetes::probe::KubernetesProbe;
static KUBERNETES_MANIFESTS: crate::kubernetes::manifest_probe::ManifestProbe =
    crate::kubernetes::manifest_probe::ManifestProbe;
static PROMETHEUS: crate::prometheus::probe::PrometheusProbe =
    crate::prometheus::probe::PrometheusProbe;
static RABBITMQ: crate::rabbitmq::probe::RabbitMqProbe = crate::rabbitmq::probe::RabbitMqProbe;
static TRACES: crate::traces::probe::TracesProbe = crate::traces::probe::TracesProbe;

/// Every probe, in catalogue order.
pub fn all() -> [&'static dyn Probe; 8] {
    [
        &REDIS,
        &POSTGRES,
        &KAFKA_LAG,
        &KUBERNETES,
        &KUBERNETES_MANIFESTS,
        &PROMETHEUS,
        &RABBITMQ,
        &TRACES,
    ]
}

pub fn find(name: &str) -> Option<&'static dyn Probe> {
    all().into_iter().find(|p| p.spec().name == name)
}

/// The probes that run against a target kind.
pub fn for_kind(kind: &str) -> Vec<&'static dyn Probe> {
    all()
        .into_iter()
        .filter(|p| p.spec().kind == kind)
        .collect()
}

/// docs/findings.md, generated from the specs so it cannot drift (a test compares them;
/// regenerate with `cargo run -p probes --example findings_doc > docs/findings.md`).
pub fn findings_markdown() -> String {
    use crate::framework::{COMMON_CODES, COMMON_PARAMS, CodeDoc};
    let mut out = String::from(
        "# Finding codes\n\nEvery finding a probe raises has a stable code: checklists and alerts refer to \
         codes (\"no finding with code X of severity ≥ warning\"), so a code never changes meaning. \
         Severity is the highest the code is raised with. Generated from the probe registry \
         (`cargo run -p probes --example findings_doc > docs/findings.md`).\n",
    );
    let table = |out: &mut String, codes: &[CodeDoc]| {
        out.push_str("\n| Code | Severity | Meaning | Remediation |\n|---|---|---|---|\n");
        for c in codes {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                c.code,
                c.severity.as_str(),
                c.meaning.replace('|', "\\|"),
                c.remediation.replace('|', "\\|")
            ));
        }
    };
    out.push_str("\n## Any probe\n\nRaised when the target itself cannot be examined; the run ends `failed` (or `timed_out`).\n");
    table(&mut out, COMMON_CODES);
    out.push_str(
        "\n## Kafka lag sampler alerts\n\nRaised by the background sampler, not by a probe run.\n",
    );
    table(&mut out, &[crate::kafka::rules::ALERT_CODE]);
    out.push_str(
        "\n## LLM budget alerts\n\nRaised by the budget evaluation (a background job), not by a probe run.\n",
    );
    table(&mut out, &[crate::llm::BUDGET_80, crate::llm::BUDGET_100]);
    for p in all() {
        let s = p.spec();
        out.push_str(&format!(
            "\n## `{}` — {} (target kind `{}`)\n\n{}\n\nSteps: {}.\n\nParameters:\n\n| Name | Default | Meaning |\n|---|---|---|\n",
            s.name,
            s.title,
            s.kind,
            s.description,
            s.steps.join(" → ")
        ));
        for prm in s.params.iter().chain(COMMON_PARAMS) {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                prm.name,
                if prm.default.is_empty() {
                    "(empty)"
                } else {
                    prm.default
                },
                prm.help
            ));
        }
        table(&mut out, s.codes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_stable_shaped_and_documented() {
        let mut seen = HashSet::new();
        for p in all() {
            for c in p.spec().codes {
                assert!(seen.insert(c.code), "duplicate code {}", c.code);
                assert!(
                    c.code
                        .chars()
                        .all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch.is_ascii_digit())
                );
                assert!(!c.meaning.is_empty() && !c.remediation.is_empty());
            }
            let steps: HashSet<_> = p.spec().steps.iter().collect();
            assert_eq!(
                steps.len(),
                p.spec().steps.len(),
                "{}: duplicate step",
                p.spec().name
            );
        }
        for c in crate::framework::COMMON_CODES {
            assert!(seen.insert(c.code));
        }
        assert!(seen.insert(crate::kafka::rules::ALERT_CODE.code));
        // The documentation is the generated text, so it lists every code.
        let doc = include_str!("../../docs/findings.md");
        assert!(
            doc == findings_markdown(),
            "docs/findings.md is stale: cargo run -p probes --example findings_doc > docs/findings.md"
        );
        for code in seen {
            assert!(
                doc.contains(&format!("`{code}`")),
                "docs/findings.md lacks {code}"
            );
        }
    }

    #[test]
    fn defaults_are_valid() {
        for p in all() {
            // A selector has no sensible default: the probe asks for one.
            let mut raw = std::collections::BTreeMap::new();
            if p.spec().params.iter().any(|x| x.name == "selector") {
                assert!(crate::framework::validate_params(p.spec(), &raw).is_err());
                raw.insert("selector".to_string(), "job=\"checkout\"".to_string());
            }
            // Nor a trace: the probe asks for a trace id or a service.
            if p.spec().name == "traces" {
                assert!(crate::framework::validate_params(p.spec(), &raw).is_err());
                raw.insert("service".to_string(), "checkout".to_string());
            }
            crate::framework::validate_params(p.spec(), &raw)
                .unwrap_or_else(|e| panic!("{}: {e}", p.spec().name));
        }
    }
}
