//! Property-based fuzzing of the probes' parsers of outside input (issue 17): Kafka
//! connection strings, Kubernetes connections, kubeconfigs and probe parameters, target network lists, Redis INFO, Prometheus answers and metric
//! conditions. Each must answer `Ok` or a clear `Err` — never panic — and what it accepts
//! must hold its invariants. proptest rather than cargo-fuzz (which needs a nightly
//! toolchain); `PROPTEST_CASES` sets the cases (default 256), and failures are saved in
//! `tests/fuzz_parsers.proptest-regressions` (committed, replayed first). The Kafka wire
//! decoder (a hostile broker's responses) is fuzzed inside `kafka::wire`'s own tests.

/// Under `fuzz::` so the TEST command can run them alone with more cases.
mod fuzz {
    use probes::kafka::config::KafkaConfig;
    use probes::net::{allowed, parse_networks};
    use probes::prometheus::condition::Condition;
    use probes::prometheus::parse_result;
    use probes::redis::probe::parse_info;
    use proptest::prelude::*;

    fn pieces(words: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(words).prop_map(str::to_string),
                1 => "[\\x00-\\x1f\"'<>&{}\\[\\]:,=*.?/@\\-\\\\ ]{0,3}",
                1 => "\\PC{0,6}",
                1 => "[0-9]{1,25}",
            ],
            0..24,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn kafka_connection_strings(conn in pieces(&[
            "kafka-1:9092", "127.0.0.1:9092", "[::1]:9092", ",", "?", "&", "=",
            "security.protocol", "SASL_SSL", "SSL", "PLAINTEXT", "sasl.mechanism", "SCRAM-SHA-512",
            "PLAIN", "sasl.username", "sasl.password", "app", "s3cr3t", "ssl.ca.location",
            "/etc/ca.pem", "%00", "%2F", "%", ":", "65536", "0",
        ]), with_credentials in any::<bool>()) {
            if let Ok(cfg) = KafkaConfig::parse(&conn, with_credentials) {
                let described = cfg.describe();
                prop_assert!(!described.contains("s3cr3t"), "the password leaked: {described:?}");
            }
        }

        #[test]
        fn network_lists(s in pieces(&[
            "10.0.0.0/8", "127.0.0.1", "::1", "fe80::/10", "/", "33", "129", ",", " ", "0.0.0.0/0",
            "256.1.1.1", "1.2.3", "::ffff:10.0.0.1",
        ]), ip in any::<std::net::Ipv4Addr>()) {
            if let Ok(list) = parse_networks(&s) {
                let _ = allowed(&list, std::net::IpAddr::V4(ip));
            }
        }

        #[test]
        fn redis_info(text in pieces(&[
            "# Server\r\n", "redis_version:7.0.15\r\n", "used_memory:", "maxmemory:", "\r\n", "\n",
            ":", "db0:keys=12,expires=3,avg_ttl=0\r\n", "role:master\r\n", "-1", "18446744073709551616",
        ])) {
            let info = parse_info(&text);
            for k in info.keys() {
                prop_assert!(!k.contains('\n') && !k.starts_with('#'), "{k:?}");
            }
        }

        #[test]
        fn metric_conditions(text in pieces(&[
            "result", "[0]", "<", ">", "<=", ">=", "==", "!=", "&&", "||", "all(", "any(", ")",
            "0.95", "NaN", "inf", "-", "1e400", " ", "result[", "]", "len(result)",
        ]), values in prop::collection::vec(any::<f64>(), 0..4)) {
            if let Ok(c) = Condition::parse(&text) {
                let v: serde_json::Value = serde_json::json!({
                    "resultType": "vector",
                    "result": values.iter().map(|x| serde_json::json!({
                        "metric": {}, "value": [0, x.to_string()]
                    })).collect::<Vec<_>>()
                });
                if let Ok(q) = parse_result(&v) {
                    let _ = c.eval(&q);
                }
            }
        }

        #[test]
        fn prometheus_answers(body in pieces(&[
            "{", "}", "[", "]", ",", ":", "\"resultType\"", "\"vector\"", "\"matrix\"", "\"scalar\"",
            "\"string\"", "\"result\"", "\"metric\"", "\"value\"", "\"values\"", "\"NaN\"", "\"+Inf\"",
            "1e999", "null", "\"1.5\"", "0",
        ])) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                let _ = parse_result(&v);
            }
        }

        #[test]
        fn prometheus_range_answers(body in pieces(&[
            "{", "}", "[", "]", ",", ":", "\"resultType\"", "\"matrix\"", "\"vector\"",
            "\"result\"", "\"metric\"", "\"values\"", "\"NaN\"", "\"+Inf\"", "1e999", "null",
            "\"1.5\"", "0", "-1", "[1,\"2\"]",
        ])) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && let Ok(series) = probes::prometheus::parse_matrix(&v)
            {
                for s in series {
                    // The rules take any numbers without panicking.
                    let _ = probes::prometheus::rules::fit(&s.points);
                    let _ = probes::prometheus::rules::increases(&s.points);
                }
            }
        }

        /// The probe's selector is pasted by people and spliced into PromQL: whatever it
        /// accepts is label matchers only (no brace, operator or function outside the
        /// quotes), and normalising it again gives the same text.
        #[test]
        fn prometheus_selectors(text in pieces(&[
            "job", "=", "!=", "=~", "!~", "\"", "\\", "checkout", ",", "{", "}", " ", "or",
            "vector(1)", ".*", "a|b", "\n", "1", "_", "é",
        ])) {
            if let Ok(sel) = probes::prometheus::rules::selector(&text) {
                let mut quoted = false;
                let mut escaped = false;
                for c in sel.chars() {
                    if escaped { escaped = false; continue; }
                    match c {
                        '\\' if quoted => escaped = true,
                        '"' => quoted = !quoted,
                        '{' | '}' | '(' | ')' | '[' | ']' | ' ' if !quoted => {
                            prop_assert!(false, "{c:?} outside quotes in {sel:?} (from {text:?})");
                        }
                        _ => {}
                    }
                }
                prop_assert!(!quoted, "unterminated quote in {sel:?}");
                prop_assert_eq!(probes::prometheus::rules::selector(&sel), Ok(sel.clone()));
            }
            let _ = probes::prometheus::rules::duration(&text);
            let _ = probes::prometheus::rules::metric_names(&text);
        }

        #[test]
        fn kubernetes_connections_and_kubeconfigs(conn in pieces(&[
            "https://", "http://", "api.prod", "127.0.0.1", ":6443", "/", "?", "&", "=", "context",
            "namespace", "shop", "Prod", "%20", "%00", "#", "u:p@",
        ]), yaml in pieces(&[
            "apiVersion: v1\n", "kind: Config\n", "clusters:\n", "- name: c\n", "  cluster:\n",
            "    server: https://api.prod:6443\n", "    certificate-authority: /etc/ca\n",
            "    proxy-url: http://p\n", "users:\n", "- name: u\n", "  user:\n", "    token: s3cr3t\n",
            "    exec:\n      command: sh\n", "    tokenFile: /x\n", "contexts:\n", "- name: prod\n",
            "  context: {cluster: c, user: u}\n", "current-context: prod\n", "&a [*a]\n", "*a",
            "[", "{", "- ", "  ", "\n", ": ", "!!binary", "---\n",
        ])) {
            use probes::kubernetes::config::{KubeTarget, check_kubeconfig};
            if let Ok(t) = KubeTarget::parse(&conn) {
                prop_assert!(t.server.starts_with("http"));
                match check_kubeconfig(&t, &yaml) {
                    Ok(c) => prop_assert!(!c.namespace.is_empty() && !c.context.is_empty()),
                    Err(e) => prop_assert!(!e.contains("s3cr3t"), "the token leaked: {e}"),
                }
            }
        }

        #[test]
        fn kubernetes_probe_parameters(w in pieces(&["deployment", "sts", "pod", "/", "api", "-", ".", "A", " ", "cronjob"]),
                                       sel in pieces(&["app", "=", "!=", ",", " in ", "(", ")", "x", "\"", ";"])) {
            use probes::kubernetes::probe::parse_workload;
            if let Ok(Some((kind, name))) = parse_workload(&w) {
                prop_assert!(!kind.is_empty() && !name.is_empty() && name.len() <= 253);
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
            }
            if probes::kubernetes::probe::check_label_selector(&sel).is_ok() {
                prop_assert!(!sel.contains(['"', ';', '&']), "{sel:?}");
            }
        }
    }
}
