use clap::CommandFactory;

use super::*;

#[test]
fn durations_parse_and_print_in_the_largest_unit() {
    let ttl = |s: &str| s.parse::<Ttl>().map(|t| t.0.as_secs());
    assert_eq!(ttl("90").unwrap(), 90);
    assert_eq!(ttl("30m").unwrap(), 1800);
    assert_eq!(ttl("1h").unwrap(), 3600);
    assert_eq!(ttl("7d").unwrap(), 604800);
    assert!(ttl("1y").is_err() && ttl("h").is_err() && ttl("0s").is_err());
    for s in ["24h", "10s", "90s", "30m", "168h"] {
        assert_eq!(s.parse::<Ttl>().unwrap().to_string(), s);
    }
}

#[test]
fn defaults_are_those_of_the_config() {
    let cli = Cli::parse_from(["vigil", "serve"]);
    let Command::Serve(args) = cli.command else {
        unreachable!()
    };
    let from_cli = args.into_config().unwrap();
    let plain = ServeConfig::new(defaults::MANIFEST.into(), defaults::DATA_DIR.into());
    assert_eq!(format!("{from_cli:?}"), format!("{plain:?}"));
}

/// The README's table of `vigil serve` flags (in its Configuration section, after
/// "`vigil serve` flags"): `| --flag | ENV | default | meaning |` rows.
fn readme_rows() -> Vec<(String, String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("`vigil serve` flags (")
        .expect("the serve flags table");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let cell = |c: &str| c.trim().trim_matches('`').to_owned();
    section
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| l.trim_matches('|').split('|').collect::<Vec<_>>())
        .filter(|cells| cells.len() == 4)
        .map(|cells| (cell(cells[0]), cell(cells[1]), cell(cells[2])))
        .collect()
}

#[test]
fn the_readme_table_says_what_the_command_line_does() {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").unwrap();
    let rows = readme_rows();
    let mut documented = 0;
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let flag = format!("--{long}");
        let Some((_, env, default)) = rows.iter().find(|(f, _, _)| *f == flag) else {
            panic!("{flag} is missing from the README's configuration table");
        };
        documented += 1;
        let real_env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        assert_eq!(
            real_env.as_deref(),
            Some(env.as_str()),
            "{flag}: environment variable"
        );
        match arg.get_default_values() {
            [d] => assert_eq!(d.to_string_lossy(), default.as_str(), "{flag}: default"),
            _ => assert!(
                !default.starts_with(|c: char| c.is_ascii_digit()),
                "{flag}: no default, README says {default}"
            ),
        }
    }
    assert_eq!(
        documented,
        rows.len(),
        "the README documents flags `vigil serve` lacks"
    );
}
