//! The work behind command-line subcommands, kept free of printing and exit codes so that it
//! can be tested; the CLI prints what these return.

use std::path::Path;

use crate::workflow::{load_dir, Kinds};

/// Loads every definition in `dir` with the product's kinds: a line per definition when all
/// are valid, otherwise every problem as `file:line: message`, one per line.
pub fn check_workflows(dir: &Path) -> Result<String, String> {
    let set = load_dir(dir, &Kinds::product()).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let lines: Vec<String> = set
        .iter()
        .map(|rt| {
            let d = rt.describe();
            let hash = rt.content_hash();
            format!(
                "ok  {} v{}  sha256={}  {}, {}",
                d.id,
                d.version,
                hash.get(..12).unwrap_or(hash),
                count(d.states.len(), "state"),
                count(d.transitions.len(), "transition"),
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::content_hash;

    #[test]
    fn the_product_folder_reports_one_line_per_definition() -> std::io::Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
        let source = std::fs::read_to_string(dir.join("subcontract_permission.toml"))?;
        let hash = content_hash(&source);
        assert_eq!(
            check_workflows(&dir),
            Ok(format!(
                "ok  subcontract_permission v1  sha256={}  9 states, 11 transitions",
                &hash[..12]
            ))
        );
        Ok(())
    }

    #[test]
    fn a_broken_folder_reports_every_problem_with_its_file_and_line() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("broken.toml");
        std::fs::write(
            &file,
            "id = \"broken\"\nversion = 0\ncontext = \"generic\"\ncreate_roles = [\"mayor\"]\n",
        )?;
        let f = file.display();
        assert_eq!(
            check_workflows(dir.path()),
            Err([
                format!("{f}:1: title (ja and en) is missing"),
                format!("{f}:1: no initial state (mark one state with initial = true)"),
                format!("{f}:1: no terminal state (mark at least one with terminal = true)"),
                format!("{f}:2: version must be 1 or more"),
                format!("{f}:4: unknown role \"mayor\" in create_roles"),
            ]
            .join("\n"))
        );
        Ok(())
    }

    #[test]
    fn an_empty_folder_is_fine_and_reports_nothing() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(check_workflows(dir.path()), Ok(String::new()));
        Ok(())
    }

    #[test]
    fn a_missing_folder_is_reported() {
        let dir = Path::new("/nonexistent/itaku-workflows");
        let result = check_workflows(dir);
        assert!(
            result.as_ref().is_err_and(
                |e| e.starts_with("/nonexistent/itaku-workflows:0: cannot read the folder: ")
            ),
            "{result:?}"
        );
    }
}
