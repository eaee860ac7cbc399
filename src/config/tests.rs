use super::*;

fn err(text: &str) -> (String, usize, usize, String) {
    match Config::from_str(text, "t.toml") {
        Err(ConfigError::Invalid {
            key,
            line,
            column,
            message,
            ..
        }) => (key, line, column, message),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("config was accepted:\n{text}"),
    }
}

#[test]
fn minimal_config_has_defaults() {
    let c = Config::from_str("[relay]\nlocal_domains = [\"Example.TEST.\"]\n", "t").unwrap();
    assert_eq!(c.relay.local_domains, vec!["example.test".to_string()]);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].address, "127.0.0.1:2525".parse().unwrap());
    assert_eq!(c.timeouts.command, Duration::from_secs(300));
    assert_eq!(c.timeouts.data_block, Duration::from_secs(180));
    assert_eq!(c.limits.max_recipients, 100);
    assert_eq!(c.limits.max_command_line, 512);
    assert!(c.dns.resolver.is_none());
    let e = c.engine_config(&c.listeners[0]);
    assert!(e.starttls && !e.require_tls && !e.require_auth && !e.auth);
}

#[test]
fn humane_values() {
    let c = Config::from_str(
        "[timeouts]\ncommand = \"1m30s\"\nsession = 600\n[limits]\nmax_message_size = \"10M\"\n[server]\nshutdown_grace = \"250ms\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.timeouts.command, Duration::from_secs(90));
    assert_eq!(c.timeouts.session, Duration::from_secs(600));
    assert_eq!(c.limits.max_message_size, 10 << 20);
    assert_eq!(c.server.shutdown_grace, Duration::from_millis(250));
}

#[test]
fn listener_modes_map_onto_the_engine() {
    let c = Config::from_str(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nmode = \"submission\"\n[[listeners]]\naddress = \"127.0.0.1:1\"\nmode = \"smtps\"\n[auth]\nallow_plaintext = true\nmax_failures = 5\n",
        "t",
    )
    .unwrap();
    let sub = c.engine_config(&c.listeners[0]);
    assert!(sub.starttls && sub.require_tls && sub.require_auth && sub.auth_plaintext);
    assert_eq!(sub.max_auth_failures, 5);
    let smtps = c.engine_config(&c.listeners[1]);
    assert!(!smtps.starttls && smtps.require_auth);
}

#[test]
fn unknown_key_is_named_with_position() {
    let (key, line, col, msg) = err("[server]\nhostname = \"mx\"\nhostnme = \"x\"\n");
    assert_eq!((key.as_str(), line, col), ("server.hostnme", 3, 1));
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn unknown_section_is_named() {
    let (key, line, _, msg) = err("[relay]\nlocal_domains = []\n\n[bogus]\nx = 1\n");
    assert_eq!(key, "bogus");
    assert_eq!(line, 4);
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn wrong_type_is_named_with_position() {
    let (key, line, col, _) = err("[limits]\nmax_recipients = \"many\"\n");
    assert_eq!((key.as_str(), line, col), ("limits.max_recipients", 2, 18));
}

#[test]
fn bad_duration_is_named() {
    let (key, line, col, msg) = err("[timeouts]\ncommand = \"5 parsecs\"\n");
    assert_eq!((key.as_str(), line, col), ("timeouts.command", 2, 11));
    assert!(msg.contains("invalid duration"), "{msg}");
}

#[test]
fn bad_delay_warning_is_named() {
    let (key, line, col, msg) = err(
        "[delivery]\nmode = \"store-and-forward\"\n[delivery.spool]\ndelay_warning_after = \"soon\"\n",
    );
    assert_eq!(
        (key.as_str(), line, col),
        ("delivery.spool.delay_warning_after", 4, 23)
    );
    assert!(msg.contains("invalid duration"), "{msg}");
}

#[test]
fn bad_cidr_is_named_with_position() {
    let (key, line, col, msg) = err(
        "[relay]\nlocal_domains = [\"a.test\"]\nrelay_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
    );
    // serde reports the array's span, so the key is the list.
    assert_eq!(key, "relay.relay_networks");
    assert_eq!((line, col), (3, 18));
    assert!(msg.contains("invalid network"), "{msg}");
}

#[test]
fn bad_listener_address_is_named() {
    let (key, line, _, _) =
        err("[[listeners]]\naddress = \"127.0.0.1:25\"\n\n[[listeners]]\naddress = \"nowhere\"\n");
    assert_eq!(key, "listeners[1].address");
    assert_eq!(line, 5);
}

#[test]
fn bad_mode_is_named() {
    let (key, line, _, msg) = err("[[listeners]]\naddress = \"127.0.0.1:25\"\nmode = \"lmtp\"\n");
    assert_eq!(key, "listeners[0].mode");
    assert_eq!(line, 3);
    assert!(msg.contains("lmtp"), "{msg}");
}

#[test]
fn duplicate_listener_is_named() {
    let (key, line, col, msg) = err(
        "[[listeners]]\naddress = \"127.0.0.1:2525\"\n[[listeners]]\naddress = \"127.0.0.1:2525\"\nmode = \"submission\"\n",
    );
    assert_eq!((key.as_str(), line, col), ("listeners[1].address", 4, 11));
    assert!(msg.contains("duplicate"), "{msg}");
}

#[test]
fn proxy_protocol_keys() {
    let c = Config::from_str(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\nproxy_trusted = [\"127.0.0.1/32\", \"10.0.0.0/8\", \"::1\"]\n",
        "t",
    )
    .unwrap();
    let l = &c.listeners[0];
    assert!(l.proxy_protocol);
    assert_eq!(l.proxy_trusted.len(), 3);
    assert!(!Config::from_str("", "t").unwrap().listeners[0].proxy_protocol);
}

#[test]
fn proxy_protocol_errors_are_named() {
    // on without trusted sources
    let (key, line, col, msg) = err(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\n[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n",
    );
    assert_eq!(
        (key.as_str(), line, col),
        ("listeners[1].proxy_protocol", 5, 18)
    );
    assert!(msg.contains("proxy_trusted"), "{msg}");
    // trusted sources without the protocol
    let (key, line, _, msg) =
        err("[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_trusted = [\"10.0.0.0/8\"]\n");
    assert_eq!((key.as_str(), line), ("listeners[0].proxy_trusted", 3));
    assert!(msg.contains("proxy_protocol"), "{msg}");
    // a bad network
    let (key, line, _, msg) = err(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\nproxy_trusted = [\"10.0.0.0/8\", \"lb.example\"]\n",
    );
    assert_eq!((key.as_str(), line), ("listeners[0].proxy_trusted", 4));
    assert!(msg.contains("lb.example"), "{msg}");
    // not a boolean
    let (key, line, _, _) =
        err("[[listeners]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = \"v2\"\n");
    assert_eq!((key.as_str(), line), ("listeners[0].proxy_protocol", 3));
}

#[test]
fn too_few_recipients_is_named() {
    let (key, line, col, msg) = err("[limits]\nmax_recipients = 50\n");
    assert_eq!((key.as_str(), line, col), ("limits.max_recipients", 2, 18));
    assert!(msg.contains("100"), "{msg}");
}

#[test]
fn missing_cert_file_is_named() {
    let (key, line, col, msg) =
        err("[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n");
    assert_eq!((key.as_str(), line, col), ("tls.cert", 2, 8));
    assert!(msg.contains("/nonexistent/cert.pem"), "{msg}");
}

#[test]
fn cert_without_key_is_named() {
    let (key, line, _, _) = err("[tls]\ncert = \"/x.pem\"\n");
    assert_eq!((key.as_str(), line), ("tls.cert", 2));
}

#[test]
fn bad_password_hash_is_named() {
    let (key, line, col, msg) =
        err("[auth]\n[[auth.users]]\nusername = \"alice\"\npassword_hash = \"hunter2\"\n");
    assert_eq!(
        (key.as_str(), line, col),
        ("auth.users[0].password_hash", 4, 17)
    );
    assert!(msg.contains("argon2"), "{msg}");
}

#[test]
fn syntax_error_has_position() {
    let (_, line, _, _) = err("[server]\nhostname = \"mx\n");
    assert_eq!(line, 2);
}

#[test]
fn error_display_names_file_key_and_position() {
    let e = Config::from_str("[limits]\nmax_recipients = 50\n", "gw.toml").unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("gw.toml:2:18: key `limits.max_recipients`:"),
        "{text}"
    );
}

#[test]
fn metrics_listen_is_optional_and_parsed() {
    let c = Config::from_str("", "t").unwrap();
    assert!(c.metrics.listen.is_none());
    let c = Config::from_str("[metrics]\nlisten = \"127.0.0.1:9325\"\n", "t").unwrap();
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9325".parse().unwrap()));
}

#[test]
fn bad_metrics_listen_is_named_with_position() {
    let (key, line, col, msg) =
        err("[relay]\nlocal_domains = []\n[metrics]\nlisten = \"localhost\"\n");
    assert_eq!((key.as_str(), line, col), ("metrics.listen", 4, 10));
    assert!(msg.contains("socket address"), "{msg}");
}

#[test]
fn metrics_listen_on_port_zero_is_named_with_position() {
    let (key, line, col, msg) = err("[metrics]\nlisten = \"127.0.0.1:0\"\n");
    assert_eq!((key.as_str(), line, col), ("metrics.listen", 2, 10));
    assert!(msg.contains("port 0"), "{msg}");
}

#[test]
fn unknown_metrics_key_is_named() {
    let (key, line, col, msg) = err("[metrics]\nlisten = \"127.0.0.1:9325\"\npath = \"/m\"\n");
    assert_eq!((key.as_str(), line, col), ("metrics.path", 3, 1));
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn kv_defaults_and_bucket_quotas() {
    let c = Config::from_str(
        "[kv]\nmax_keys = 50\n[kv.buckets.greylist]\nmax_value_bytes = \"1k\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.kv.backend, crate::kv::BackendKind::Embedded);
    assert_eq!(c.kv.path, std::path::PathBuf::from("var/kv"));
    let q = c.kv.quota("greylist");
    assert_eq!((q.max_value_bytes, q.max_keys), (1024, 50));
    let q = c.kv.quota("other");
    assert_eq!((q.max_value_bytes, q.max_keys), (64 * 1024, 50));
}

#[test]
fn kv_errors_are_named_with_position() {
    let (key, line, column, message) = err("[kv]\nbackend = \"redis\"\n");
    assert_eq!((key.as_str(), line, column), ("kv.backend", 2, 11));
    assert!(message.contains("url"), "{message}");
    let (key, line, _, message) = err("[kv]\nbackend = \"redis\"\nurl = \"http://x\"\n");
    assert_eq!((key.as_str(), line), ("kv.url", 3));
    assert!(message.contains("Redis URL"), "{message}");
    let (key, line, _, _) = err("[kv]\nkey_prefix = \"a{b}\"\n");
    assert_eq!((key.as_str(), line), ("kv.key_prefix", 2));
    let (key, line, _, _) = err("[kv]\n[kv.buckets.greylist]\nmax_keys = 0\n");
    assert_eq!((key.as_str(), line), ("kv.buckets.greylist.max_keys", 3));
    let (key, line, _, _) = err("[kv.buckets.\"bad name\"]\nmax_keys = 1\n");
    assert_eq!((key.as_str(), line), ("kv.buckets.bad name", 1));
    let (key, line, _, _) = err("[kv]\nbackend = \"memcached\"\n");
    assert_eq!((key.as_str(), line), ("kv.backend", 2));
    let (key, line, _, _) = err("[kv]\npool_size = 0\n");
    assert_eq!((key.as_str(), line), ("kv.pool_size", 2));
}

#[test]
fn kv_cluster_is_checked_and_named() {
    let c = Config::from_str(
        "[kv]\nbackend = \"redis\"\ncluster = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.kv.cluster.as_ref().map(Vec::len), Some(2));
    let (key, line, _, message) = err(
        "[kv]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1/\"\ncluster = [\"redis://127.0.0.1:7000\"]\n",
    );
    assert_eq!((key.as_str(), line), ("kv.cluster", 4));
    assert!(message.contains("not both"), "{message}");
    let (key, line, _, message) = err("[kv]\nbackend = \"redis\"\ncluster = []\n");
    assert_eq!((key.as_str(), line), ("kv.cluster", 3));
    assert!(message.contains("at least one"), "{message}");
    let (key, _, _, message) =
        err("[kv]\nbackend = \"redis\"\ncluster = [\"redis://127.0.0.1:7000\", \"http://x\"]\n");
    assert_eq!(key, "kv.cluster[1]");
    assert!(message.contains("Redis URL"), "{message}");
    let (key, _, _, message) =
        err("[kv]\nbackend = \"redis\"\ncluster = [\"redis://127.0.0.1:7000/2\"]\n");
    assert_eq!(key, "kv.cluster[0]");
    assert!(message.contains("database 0"), "{message}");
    let (key, line, _, message) = err("[kv]\ncluster = [\"redis://127.0.0.1:7000\"]\n");
    assert_eq!((key.as_str(), line), ("kv.cluster", 2));
    assert!(message.contains("backend"), "{message}");
}

#[test]
fn malformed_grants_are_named_with_position() {
    let base = "[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\n";
    let (key, line, col, msg) = err(&format!(
        "{base}connect = [\"127.0.0.1:783\", \"host:25\"]\n"
    ));
    assert_eq!((key.as_str(), line, col), ("plugins[0].connect[1]", 4, 29));
    assert!(msg.contains("invalid connect grant"), "{msg}");
    let (key, line, col, _) = err(&format!("{base}kv = [\"grey list\"]\n"));
    assert_eq!((key.as_str(), line, col), ("plugins[0].kv[0]", 4, 7));
    let (key, _, _, msg) = err(&format!("{base}http = [\"http://127.0.0.1:1/path\"]\n"));
    assert_eq!(key, "plugins[0].http[0]");
    assert!(msg.contains("no path"), "{msg}");
    let (key, _, _, _) = err(&format!("{base}dns = \"yes\"\n"));
    assert_eq!(key, "plugins[0].dns");
    let ok = Config::from_str(
        &format!("{base}dns = true\nkv = [\"greylist\"]\nconnect = [\"10.0.0.0/8:783\"]\nhttp = [\"http://127.0.0.1:11333\"]\n"),
        "t",
    )
    .unwrap();
    let g = ok.plugins[0].grants().unwrap();
    assert!(g.dns && g.kv_bucket("greylist"));
    assert!(g.connect_to("10.1.2.3:783".parse().unwrap()));
    assert!(g.http_to("http", "127.0.0.1", 11333));
}
