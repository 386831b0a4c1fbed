use super::*;

const GOOD: &str = r#"
[defaults]
ttl = 600
timeout = "500ms"

[[zone]]
name = "Corp.Example.com."
servers = ["192.0.2.10", "dc2.corp.example.com:5353", "[2001:db8::1]:53"]

[[host]]
name = "kms1.corp.example.com"
zones = ["corp.example.com"]
state = "active"
priority = 10

[[host]]
name = "kms2.corp.example.com"
zones = []
state = "decommissioned"
port = 11688
"#;

fn problems(text: &str) -> Vec<Problem> {
    Inventory::from_toml(text).expect_err("the inventory should be refused")
}

fn one_problem(text: &str) -> Problem {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    p.into_iter().next().unwrap()
}

#[test]
fn a_good_inventory_is_read_with_defaults() {
    let inv = Inventory::from_toml(GOOD).unwrap();
    assert_eq!(inv.defaults.ttl, 600);
    assert_eq!(inv.defaults.timeout, Duration::from_millis(500));
    assert_eq!(inv.defaults.retries, 2);
    let z = &inv.zones[0];
    assert_eq!(z.name.as_str(), "corp.example.com");
    assert_eq!(z.policy, Policy::Audit);
    assert_eq!(z.servers[0].to_string(), "192.0.2.10:53");
    assert_eq!(z.servers[1].to_string(), "dc2.corp.example.com:5353");
    assert_eq!(z.servers[2].to_string(), "[2001:db8::1]:53");
    assert_eq!(inv.hosts[0].port, 1688);
    assert_eq!(inv.hosts[0].priority, 10);
    assert_eq!(inv.hosts[1].port, 11688);
    assert_eq!(inv.hosts[1].state, HostState::Decommissioned);
}

#[test]
fn unknown_key_is_named_with_its_position() {
    let p = one_problem("[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\nserver = \"x\"\n");
    assert_eq!((p.line, p.column), (4, 1));
    assert_eq!(p.key, "zone[0].server");
    assert!(p.message.contains("unknown field"), "{}", p.message);
}

#[test]
fn wrong_type_is_named_with_its_position() {
    let text = "[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\n[[host]]\nname = \"k.a.test\"\nzones = [\"a.test\"]\nstate = \"active\"\n[[host]]\nname = \"k2.a.test\"\nzones = [\"a.test\"]\nstate = \"active\"\nport = \"1688\"\n";
    let p = one_problem(text);
    assert_eq!(p.line, 12);
    assert_eq!(p.key, "host[1].port");
}

#[test]
fn bad_enum_value_is_refused() {
    let p = one_problem("[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\npolicy = \"fix\"\n");
    assert_eq!(p.line, 4);
    assert_eq!(p.key, "zone[0].policy");
}

#[test]
fn undeclared_zone_duplicates_and_empty_servers_are_all_reported() {
    let text = r#"
[[zone]]
name = "a.test"
servers = []

[[zone]]
name = "A.test."
servers = ["127.0.0.1"]

[[host]]
name = "kms.a.test"
zones = ["b.test"]
state = "standby"

[[host]]
name = "KMS.a.test"
zones = ["a.test"]
state = "standby"
"#;
    let p = problems(text);
    let keys: Vec<_> = p.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        keys,
        vec![(4, "zone[0].servers"), (7, "zone[1].name"), (12, "host[0].zones[0]"), (16, "host[1].name")],
        "{p:#?}"
    );
    assert!(p[2].message.contains("'b.test' is not declared"));
    assert!(p[3].message.contains("declared twice"));
}

#[test]
fn invalid_names_ports_and_servers_are_refused() {
    let text = r#"
[defaults]
port = 70000
timeout = "soon"

[[zone]]
name = "bad..zone"
servers = ["127.0.0.1:0"]

[[zone]]
name = "ok.test"
servers = ["127.0.0.1", "127.0.0.1:53"]

[[host]]
name = "kms_1 .ok.test"
zones = ["ok.test"]
state = "active"

[[host]]
name = "kms2.ok.test"
zones = ["ok.test"]
state = "active"
priority = -1
"#;
    let p = problems(text);
    let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "defaults.port",
            "defaults.timeout",
            "zone[0].name",
            "zone[1].servers[1]",
            "host[0].name",
            "host[1].priority"
        ],
        "{p:#?}"
    );
}

/// A zone's KMS record is `_vlmcs._tcp.<zone>`: a zone name within 12 octets of the 253 limit
/// is a valid name whose record cannot be named, so it is refused where it is written.
#[test]
fn a_zone_too_long_for_its_vlmcs_record_is_refused() {
    let zone = |len: usize| {
        let name = format!("{}{}", "abcdefghi.".repeat(len / 10), "x".repeat(len % 10));
        assert!(name.len() == len && !name.ends_with('.'), "{name}");
        format!("[[zone]]\nname = \"{name}\"\nservers = [\"127.0.0.1\"]\n")
    };
    assert!(Inventory::from_toml(&zone(241)).is_ok(), "241 octets leave room for _vlmcs._tcp.");
    let p = one_problem(&zone(243));
    assert_eq!(p.key, "zone[0].name");
    assert!(p.message.contains("_vlmcs._tcp.") && p.message.contains("241"), "{}", p.message);
}

#[test]
fn an_active_host_needs_a_zone() {
    let p = one_problem(
        "[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\n[[host]]\nname = \"k.a.test\"\nzones = []\nstate = \"active\"\n",
    );
    assert_eq!(p.key, "host[0].zones");
}

#[test]
fn syntax_errors_have_a_position() {
    let p = one_problem("[[zone]]\nname = \"a.test\nservers = []\n");
    assert_eq!(p.line, 2);
}

#[test]
fn error_display_names_file_line_column_and_key() {
    let e = ConfigError { path: "/etc/kmsdns/kmsdns.toml".into(), problems: problems("[defaults]\nretries = 99\n") };
    assert_eq!(
        e.to_string(),
        "/etc/kmsdns/kmsdns.toml:2:11: defaults.retries: 99 is out of range: retries must be 0 to 10"
    );
}

#[test]
fn zone_containing_prefers_the_deepest_zone() {
    let inv = Inventory::from_toml(
            "[[zone]]\nname = \"test\"\nservers = [\"127.0.0.1\"]\n[[zone]]\nname = \"a.test\"\nservers = [\"127.0.0.1\"]\n",
        )
        .unwrap();
    let n = DnsName::parse("kms.a.test").unwrap();
    assert_eq!(inv.zone_containing(&n).unwrap().name.as_str(), "a.test");
    assert!(inv.zone_containing(&DnsName::parse("x.example").unwrap()).is_none());
}

/// `n` zones and 3 active hosts, each publishing in every zone: the shape of an MSP estate.
fn estate_of(n: usize) -> String {
    let mut t = String::new();
    for i in 0..n {
        t.push_str(&format!("[[zone]]\nname = \"zone{i}.test\"\nservers = [\"127.0.0.1\", \"127.0.0.2\"]\n"));
    }
    let zones: Vec<String> = (0..n).map(|i| format!("\"zone{i}.test\"")).collect();
    for k in 1..=3 {
        t.push_str(&format!("[[host]]\nname = \"kms{k}.test\"\nzones = [{}]\nstate = \"active\"\n", zones.join(", ")));
    }
    t
}

#[test]
fn loading_is_linear_in_the_zones() {
    // Counted name comparisons, not time: four times the zones may cost four times the work
    // (a scan per zone, 16 times, was issue 13's 1.96 s audit of 10,000 zones).
    let work = |n: usize| {
        let text = estate_of(n);
        let (inv, made) = crate::name::comparisons::made_by(|| Inventory::from_toml(&text));
        assert_eq!(inv.expect("the estate is valid").hosts[2].zones.len(), n);
        made
    };
    let (small, large) = (work(500), work(2000));
    assert!(large <= 4 * small + 500, "500 zones: {small} comparisons, 2000 zones: {large}");
    assert!(large <= 20 * 2000, "2000 zones took {large} name comparisons");
}

proptest::proptest! {
    #[test]
    fn no_input_makes_the_parser_panic(s in "\\PC{0,200}") {
        let _ = Inventory::from_toml(&s);
    }

    #[test]
    fn mangled_good_inventories_never_panic(cut in 0usize..400, junk in "[\\[\\]=\"a-z0-9 .\n]{0,20}") {
        let mut t = GOOD.to_string();
        let at = cut.min(t.len());
        t.insert_str(at, &junk);
        let _ = Inventory::from_toml(&t);
    }
}

#[test]
fn the_instance_is_named_by_the_host_by_default_and_its_entries_count_for_three_intervals() {
    let inv = Inventory::from_toml(GOOD).unwrap();
    assert_eq!(inv.instance.id, crate::peers::InstanceId::from_hostname());
    assert!(inv.instance.share_view);
    assert_eq!(inv.instance.stale_after, inv.daemon.interval * 3);
    let text = format!("{GOOD}\n[instance]\nid = \"Site-A\"\nshare_view = false\nstale_after = \"5m\"\n");
    let inv = Inventory::from_toml(&text).unwrap();
    assert_eq!((inv.instance.id.as_str(), inv.instance.share_view), ("site-a", false));
    assert_eq!(inv.instance.stale_after, Duration::from_secs(300));
}

#[test]
fn an_instance_id_that_is_no_dns_label_or_a_bound_shorter_than_two_intervals_is_refused() {
    let p = one_problem(&format!("{GOOD}\n[instance]\nid = \"site a\"\n"));
    assert_eq!(p.key, "instance.id");
    assert!(p.message.contains("not a DNS label"), "{}", p.message);
    let p = one_problem(&format!("{GOOD}\n[daemon]\ninterval = \"60s\"\n[instance]\nstale_after = \"90s\"\n"));
    assert_eq!(p.key, "instance.stale_after");
    assert!(p.message.contains("at least twice daemon.interval (1m)"), "{}", p.message);
}
