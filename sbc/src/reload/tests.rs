use super::*;

const BASE: &str = "[sip]\nudp = [\"127.41.0.1:5060\"]\n[media]\nenabled = false\n\
[inside]\naddress = \"127.41.0.1\"\ntargets = [\"pbx\"]\n\
[[target_group]]\nname = \"pbx\"\ntargets = [{ address = \"127.41.0.2:5090\" }]\n\
[[route]]\nname = \"all\"\nfrom = \"outside\"\nprefix = \"\"\ntarget_group = \"pbx\"\n";

fn load(text: &str) -> Config {
    Config::from_toml_with(text, "test", None).unwrap()
}

#[test]
fn the_same_file_with_lines_moved_changes_nothing() {
    let moved = format!("\n\n# a comment\n{BASE}");
    assert_eq!(compare(&load(BASE), &load(&moved)), Ok((vec![], vec![])));
}

#[test]
fn run_time_parts_are_applied_and_the_rest_needs_a_restart() {
    let new = BASE
        .replace("127.41.0.2:5090", "127.41.0.3:5090")
        .replace(
            "[media]",
            "workers = 3\n[limits]\nringing_timeout_secs = 60\nmax_cps = 9\n[media]",
        )
        .replace("udp = [\"127.41.0.1:5060\"]", "udp = [\"127.41.0.1:5070\"]");
    // `workers` must come before the first table.
    let new = format!("workers = 3\n{}", new.replace("workers = 3\n", ""));
    let (live, restart) = compare(&load(BASE), &load(&new)).unwrap();
    assert_eq!(live, vec!["target_group", "limits.ringing_timeout_secs"]);
    assert_eq!(restart, vec!["workers", "sip", "limits.max_cps"]);
}

#[test]
fn a_new_tcp_next_hop_refuses_the_reload() {
    let new = BASE.replace(
        "{ address = \"127.41.0.2:5090\" }",
        "{ address = \"127.41.0.2:5090\", transport = \"tcp\" }",
    );
    let err = compare(&load(BASE), &load(&new)).unwrap_err();
    assert!(err.contains("restart"), "{err}");
}

#[test]
fn a_bad_file_names_key_and_line() {
    let dir = std::env::temp_dir().join(format!("sbc-reload-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        BASE.replace("target_group = \"pbx\"\n", "target_group = \"nope\"\n"),
    )
    .unwrap();
    let err = check_config(&file).unwrap_err();
    assert!(err.contains("nope") && err.contains("line 15"), "{err}");
    std::fs::write(&file, BASE).unwrap();
    assert!(check_config(&file).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
