//! One test per validation rule: a valid minimal definition with exactly one thing broken, and
//! the exact messages (with line numbers) that a person editing the file would read.

use std::path::{Path, PathBuf};

use super::kinds::workload;
use super::{load_dir, Kinds, Vocabulary, WorkflowSet};

/// The start of every definition here: the header and the initial state (lines 1 to 10).
const HEAD: &str = r#"id = "minimal"
version = 1
context = "generic"
title = { ja = "最小の手続", en = "Minimal process" }
create_roles = ["officer"]

[[states]]
id = "draft"
initial = true
label = { ja = "下書き", en = "Draft" }
"#;

/// The terminal state (five lines).
const DONE: &str = r#"
[[states]]
id = "done"
terminal = true
label = { ja = "完了", en = "Done" }
"#;

/// The one transition of [`minimal`] (lines 17 to 22).
const FINISH: &str = r#"
[[transitions]]
event = "finish"
from = ["draft"]
to = "done"
roles = ["officer"]
label = { ja = "完了する", en = "Finish" }
"#;

/// The smallest valid definition: two states (lines 7 and 12) and one transition (line 17).
pub(super) fn minimal() -> String {
    [HEAD, DONE, FINISH].concat()
}

/// A timer bound to the initial state, appended to [`minimal`] (starts at line 24).
const TIMER: &str = r#"
[[timers]]
id = "reminder"
state = "draft"
after_business_days = 5
action = "remind"
template = "decision_reminder"
label = { ja = "督促", en = "Reminder" }
"#;

/// The route state of [`routed`] (line 12); `done` follows at line 17.
const REVIEW: &str = r#"
[[states]]
id = "review"
route = "decision"
label = { ja = "決裁中", en = "Under decision" }
"#;

/// The route of [`routed`] (line 22), without its steps.
const ROUTE: &str = r#"
[[routes]]
id = "decision"
event = "approve"
label = { ja = "決裁", en = "Decision" }
"#;

/// The steps of the route (lines 27 and 32).
const STEPS: &str = r#"
[[routes.steps]]
id = "check"
role = "officer"
label = { ja = "担当者審査", en = "Officer check" }

[[routes.steps]]
id = "decide"
role = "manager"
label = { ja = "課長決裁", en = "Manager decision" }
"#;

/// The transitions of [`routed`] (lines 37 and 44 after [`STEPS`]).
const ROUTED_TRANSITIONS: &str = r#"
[[transitions]]
event = "submit"
from = ["draft"]
to = "review"
roles = ["officer"]
label = { ja = "提出", en = "Submit" }

[[transitions]]
event = "approve"
from = ["review"]
to = "done"
label = { ja = "決裁", en = "Approve" }
"#;

/// A valid definition with an approval route whose steps are `steps`.
fn routed_with(steps: &str) -> String {
    [HEAD, REVIEW, DONE, ROUTE, steps, ROUTED_TRANSITIONS].concat()
}

fn routed() -> String {
    routed_with(STEPS)
}

/// `base` with each `(old, new)` applied; every `old` must occur exactly once, so that a test
/// cannot silently stop breaking what it means to break.
pub(super) fn edit(base: &str, changes: &[(&str, &str)]) -> String {
    let mut src = base.to_owned();
    for (old, new) in changes {
        assert_eq!(src.matches(old).count(), 1, "{old:?} must occur once");
        src = src.replacen(old, new, 1);
    }
    src
}

/// The messages of compiling `src` with the product's kinds, or none if it compiles.
fn errors(src: &str) -> Vec<String> {
    match Kinds::product().compile("broken.toml", src) {
        Ok(_) => Vec::new(),
        Err(list) => list.iter().map(ToString::to_string).collect(),
    }
}

fn assert_errors(src: &str, expected: &[&str]) {
    assert_eq!(errors(src), expected, "source:\n{src}");
}

#[test]
fn the_minimal_and_the_routed_definitions_are_valid() {
    assert_errors(&minimal(), &[]);
    assert_errors(&[minimal().as_str(), TIMER].concat(), &[]);
    assert_errors(&routed(), &[]);
}

/// [`minimal`] with `line` added to its transition, at line 22.
fn finish_with(line: &str) -> String {
    edit(
        &minimal(),
        &[(
            "roles = [\"officer\"]\nlabel",
            &format!("roles = [\"officer\"]\n{line}\nlabel"),
        )],
    )
}

/// [`minimal`] with one effect on its transition (at line 22).
fn with_effect(effect: &str) -> String {
    finish_with(&format!("effects = [{effect}]"))
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let src = edit(&minimal(), &[("en = \"Finish\" }", "en = \"Finish\"")]);
    assert_errors(
        &src,
        &["broken.toml:22: unclosed inline table, expected `}`"],
    );
}

#[test]
fn an_unknown_guard_is_refused_with_the_known_ones() {
    let src = finish_with("guards = [{ name = \"is_mayor\" }]");
    assert_errors(
        &src,
        &["broken.toml:22: unknown guard \"is_mayor\" in transition \"finish\" (known: actor_is_submitter, actor_not_submitter, current_step_actor)"],
    );
}

#[test]
fn a_guard_with_a_parameter_it_does_not_take_is_refused() {
    let src = finish_with("guards = [{ name = \"actor_is_submitter\", strict = true }]");
    assert_errors(
        &src,
        &["broken.toml:22: guard \"actor_is_submitter\": guard \"actor_is_submitter\" takes no parameter, got \"strict\""],
    );
}

#[test]
fn an_unknown_effect_is_refused() {
    assert_errors(
        &with_effect("{ name = \"fax\" }"),
        &["broken.toml:22: unknown effect \"fax\" in transition \"finish\""],
    );
}

#[test]
fn an_effect_naming_an_unknown_template_is_refused() {
    assert_errors(
        &with_effect("{ name = \"notify\", to = \"submitter\", template = \"greeting\" }"),
        &["broken.toml:22: effect \"notify\": unknown template \"greeting\""],
    );
}

#[test]
fn an_effect_naming_an_unknown_recipient_is_refused() {
    assert_errors(
        &with_effect(
            "{ name = \"notify\", to = [\"submitter\", \"mayor\"], template = \"step_waiting\" }",
        ),
        &["broken.toml:22: effect \"notify\": unknown recipient \"mayor\""],
    );
}

#[test]
fn a_start_timer_effect_naming_an_unknown_timer_is_refused() {
    assert_errors(
        &with_effect("{ name = \"start_timer\", timer = \"alarm\" }"),
        &["broken.toml:22: effect \"start_timer\": unknown timer \"alarm\""],
    );
}

#[test]
fn an_unknown_role_in_a_transition_is_refused() {
    let src = edit(
        &minimal(),
        &[(
            "roles = [\"officer\"]\nlabel",
            "roles = [\"officer\", \"mayor\"]\nlabel",
        )],
    );
    assert_errors(
        &src,
        &["broken.toml:17: unknown role \"mayor\" in transition \"finish\""],
    );
}

#[test]
fn an_unknown_role_in_a_step_is_refused() {
    let src = edit(&routed(), &[("role = \"manager\"", "role = \"mayor\"")]);
    assert_errors(
        &src,
        &["broken.toml:32: unknown role \"mayor\" in step \"decide\""],
    );
}

#[test]
fn an_unknown_role_in_create_roles_is_refused() {
    let src = edit(
        &minimal(),
        &[(
            "create_roles = [\"officer\"]",
            "create_roles = [\"officer\", \"mayor\"]",
        )],
    );
    assert_errors(
        &src,
        &["broken.toml:5: unknown role \"mayor\" in create_roles"],
    );
}

#[test]
fn an_unknown_organisation_scope_is_refused_where_it_is_named() {
    let src = edit(
        &minimal(),
        &[
            (
                "create_roles = [\"officer\"]",
                "create_roles = [\"officer\"]\ncreate_org = \"ward\"",
            ),
            (
                "roles = [\"officer\"]\nlabel",
                "roles = [\"officer\"]\norg = \"ward\"\nlabel",
            ),
        ],
    );
    assert_errors(
        &src,
        &[
            "broken.toml:6: unknown organisation scope \"ward\" in create_org",
            "broken.toml:18: unknown organisation scope \"ward\" in transition \"finish\"",
        ],
    );
}

#[test]
fn an_unknown_context_kind_is_refused_with_the_known_ones() {
    let src = edit(
        &minimal(),
        &[("context = \"generic\"", "context = \"payroll\"")],
    );
    assert_errors(
        &src,
        &["broken.toml:3: unknown context kind \"payroll\" (known: generic, subcontract)"],
    );
}

#[test]
fn a_transition_from_an_unknown_state_is_refused() {
    let src = edit(&minimal(), &[("from = [\"draft\"]", "from = [\"drafts\"]")]);
    assert_errors(
        &src,
        &["broken.toml:17: transition \"finish\" from unknown state \"drafts\""],
    );
}

#[test]
fn a_transition_to_an_unknown_state_is_refused() {
    let src = edit(&minimal(), &[("to = \"done\"", "to = \"dne\"")]);
    assert_errors(
        &src,
        &["broken.toml:17: transition \"finish\" to unknown state \"dne\""],
    );
}

#[test]
fn a_state_declared_twice_is_refused() {
    let src = edit(
        &minimal(),
        &[("[[transitions]]", "[[states]]\nid = \"draft\"\nlabel = { ja = \"下書き\", en = \"Draft\" }\n\n[[transitions]]")],
    );
    assert_errors(&src, &["broken.toml:17: state \"draft\" is declared twice"]);
}

#[test]
fn a_route_declared_twice_is_refused_without_blaming_the_routes_after_it() {
    let duplicate = "\n[[routes]]\nid = \"decision\"\nevent = \"approve\"\nlabel = { ja = \"決裁\", en = \"Decision\" }\n";
    let src = routed_with(&[STEPS, duplicate].concat());
    assert_errors(
        &src,
        &["broken.toml:37: route \"decision\" is declared twice"],
    );
}

/// A state inserted before the transitions of [`minimal`], at line 17 (they move to line 21).
fn with_state(id: &str) -> String {
    edit(
        &minimal(),
        &[(
            "[[transitions]]",
            &format!("[[states]]\nid = \"{id}\"\nlabel = {{ ja = \"別の状態\", en = \"Other\" }}\n\n[[transitions]]"),
        )],
    )
}

/// A transition appended to `base`; in [`minimal`] it starts at line 24.
pub(super) fn with_transition(
    base: &str,
    event: &str,
    from: &str,
    to: &str,
    extra: &str,
) -> String {
    format!(
        "{base}\n[[transitions]]\nevent = \"{event}\"\nfrom = [\"{from}\"]\nto = \"{to}\"\nroles = [\"officer\"]\nlabel = {{ ja = \"別の遷移\", en = \"Another\" }}\n{extra}"
    )
}

#[test]
fn a_state_that_cannot_be_reached_is_refused() {
    let src = edit(
        &with_state("orphan"),
        &[("from = [\"draft\"]", "from = [\"draft\", \"orphan\"]")],
    );
    assert_errors(
        &src,
        &["broken.toml:17: state \"orphan\" cannot be reached from the initial state"],
    );
}

#[test]
fn a_state_from_which_no_terminal_state_can_be_reached_is_refused() {
    let src = with_transition(&with_state("limbo"), "park", "draft", "limbo", "");
    assert_errors(
        &src,
        &["broken.toml:17: no terminal state can be reached from state \"limbo\""],
    );
}

#[test]
fn two_transitions_for_one_event_from_one_state_without_distinguishing_guards_are_refused() {
    let src = with_transition(&minimal(), "finish", "draft", "done", "");
    assert_errors(
        &src,
        &["broken.toml:24: two transitions for event \"finish\" from state \"draft\" without distinguishing guards (the other is at line 17)"],
    );
}

#[test]
fn two_transitions_for_one_event_from_one_state_with_distinguishing_guards_are_accepted() {
    let first = finish_with("guards = [{ name = \"actor_is_submitter\" }]");
    let src = with_transition(
        &first,
        "finish",
        "draft",
        "done",
        "guards = [{ name = \"actor_not_submitter\" }]\n",
    );
    assert_errors(&src, &[]);
}

#[test]
fn a_state_without_its_japanese_label_is_refused() {
    let src = edit(
        &minimal(),
        &[("{ ja = \"下書き\", en = \"Draft\" }", "{ en = \"Draft\" }")],
    );
    assert_errors(
        &src,
        &["broken.toml:7: state \"draft\" is missing its ja label"],
    );
}

#[test]
fn a_state_without_any_label_is_refused() {
    let src = edit(
        &minimal(),
        &[("label = { ja = \"下書き\", en = \"Draft\" }\n", "")],
    );
    assert_errors(
        &src,
        &["broken.toml:7: state \"draft\" is missing its ja and en label"],
    );
}

#[test]
fn a_transition_without_its_english_label_is_refused() {
    let src = edit(
        &minimal(),
        &[(
            "{ ja = \"完了する\", en = \"Finish\" }",
            "{ ja = \"完了する\", en = \" \" }",
        )],
    );
    assert_errors(
        &src,
        &["broken.toml:17: transition \"finish\" is missing its en label"],
    );
}

#[test]
fn a_title_without_its_japanese_text_is_refused() {
    let src = edit(&minimal(), &[("ja = \"最小の手続\", ", "")]);
    assert_errors(&src, &["broken.toml:4: title is missing its ja text"]);
}

#[test]
fn a_title_without_its_english_text_is_refused() {
    let src = edit(&minimal(), &[(", en = \"Minimal process\"", "")]);
    assert_errors(&src, &["broken.toml:4: title is missing its en text"]);
}

#[test]
fn a_definition_without_a_title_is_refused() {
    let src = edit(
        &minimal(),
        &[(
            "title = { ja = \"最小の手続\", en = \"Minimal process\" }\n",
            "",
        )],
    );
    assert_errors(&src, &["broken.toml:1: title (ja and en) is missing"]);
}

#[test]
fn a_second_initial_state_is_refused() {
    let src = edit(
        &routed(),
        &[(
            "route = \"decision\"",
            "route = \"decision\"\ninitial = true",
        )],
    );
    assert_errors(&src, &["broken.toml:12: a second initial state \"review\""]);
}

#[test]
fn a_definition_without_an_initial_state_is_refused() {
    let src = edit(&minimal(), &[("initial = true\n", "")]);
    assert_errors(
        &src,
        &["broken.toml:1: no initial state (mark one state with initial = true)"],
    );
}

#[test]
fn a_transition_leaving_a_terminal_state_is_refused() {
    let src = with_transition(&minimal(), "reopen", "done", "draft", "");
    assert_errors(
        &src,
        &["broken.toml:24: transition \"reopen\" leaves terminal state \"done\""],
    );
}

#[test]
fn a_route_state_without_a_transition_to_complete_the_route_is_refused() {
    let src = edit(
        &routed(),
        &[(
            "event = \"approve\"\nfrom = [\"review\"]\nto = \"done\"\n",
            "event = \"decide\"\nfrom = [\"review\"]\nto = \"done\"\nroles = [\"manager\"]\n",
        )],
    );
    assert_errors(
        &src,
        &["broken.toml:12: route state \"review\" has no transition on \"approve\" to leave it when the route completes"],
    );
}

#[test]
fn a_route_that_no_state_runs_is_refused() {
    let spare = "\n[[routes]]\nid = \"spare\"\nevent = \"approve\"\nlabel = { ja = \"予備\", en = \"Spare\" }\n\n[[routes.steps]]\nid = \"only\"\nrole = \"manager\"\nlabel = { ja = \"課長決裁\", en = \"Manager decision\" }\n";
    let src = routed_with(&[STEPS, spare].concat());
    assert_errors(
        &src,
        &["broken.toml:37: route \"spare\" is not used by any state"],
    );
}

#[test]
fn a_route_with_both_steps_and_steps_from_is_refused() {
    let src = edit(
        &routed(),
        &[(
            "event = \"approve\"\nlabel",
            "event = \"approve\"\nsteps_from = \"tiers\"\nlabel",
        )],
    );
    assert_errors(
        &src,
        &["broken.toml:22: route \"decision\" has both steps_from and steps; choose one"],
    );
}

#[test]
fn a_route_with_an_unknown_step_provider_is_refused() {
    let src = routed_with("steps_from = \"tiers\"\n");
    assert_errors(
        &src,
        &["broken.toml:22: unknown step provider \"tiers\" in route \"decision\""],
    );
}

#[test]
fn a_parallel_step_requiring_more_reviewers_than_it_has_is_refused() {
    let src = edit(
        &routed(),
        &[(
            "role = \"manager\"",
            "kind = \"parallel\"\nreviewers = [\"chief\", \"manager\"]\nrequire = 3",
        )],
    );
    assert_errors(
        &src,
        &["broken.toml:32: step \"decide\": require must be \"all\", \"any\" or a number from 1 to 2, got 3"],
    );
}

#[test]
fn a_skippable_last_step_is_refused() {
    let src = edit(
        &routed(),
        &[("role = \"manager\"", "role = \"manager\"\nskippable = true")],
    );
    assert_errors(
        &src,
        &["broken.toml:32: the last step \"decide\" cannot be skippable"],
    );
}

#[test]
fn roles_on_a_transition_that_completes_a_route_are_refused() {
    let src = edit(
        &routed(),
        &[("to = \"done\"\n", "to = \"done\"\nroles = [\"manager\"]\n")],
    );
    assert_errors(
        &src,
        &["broken.toml:44: transition \"approve\" completes a route: its roles come from the route steps, remove roles"],
    );
}

#[test]
fn declaring_a_built_in_event_is_refused() {
    let src = edit(&minimal(), &[("event = \"finish\"", "event = \"proxy\"")]);
    assert_errors(
        &src,
        &["broken.toml:17: event \"proxy\" is built into the engine and cannot be declared"],
    );
}

#[test]
fn return_from_a_state_without_a_route_is_refused() {
    let src = edit(&minimal(), &[("event = \"finish\"", "event = \"return\"")]);
    assert_errors(
        &src,
        &["broken.toml:17: \"return\" (差戻し) may only leave a route state"],
    );
}

/// [`minimal`] with [`TIMER`], the timer changed as given.
fn with_timer(changes: &[(&str, &str)]) -> String {
    edit(&[minimal().as_str(), TIMER].concat(), changes)
}

#[test]
fn a_timer_with_an_unknown_template_is_refused() {
    let src = with_timer(&[("template = \"decision_reminder\"", "template = \"nudge\"")]);
    assert_errors(
        &src,
        &["broken.toml:24: unknown template \"nudge\" in timer \"reminder\""],
    );
}

#[test]
fn a_timer_bound_to_an_unknown_state_is_refused() {
    let src = with_timer(&[("state = \"draft\"", "state = \"drafts\"")]);
    assert_errors(
        &src,
        &["broken.toml:24: timer \"reminder\" names unknown state \"drafts\""],
    );
}

#[test]
fn an_escalation_timer_without_a_role_is_refused() {
    let src = with_timer(&[("action = \"remind\"", "action = \"escalate\"")]);
    assert_errors(
        &src,
        &["broken.toml:24: escalation timer \"reminder\" needs the role to escalate to"],
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once_sorted_by_line() {
    let src = edit(
        &with_effect("{ name = \"fax\" }"),
        &[
            ("create_roles = [\"officer\"]", "create_roles = [\"mayor\"]"),
            ("{ ja = \"完了\", en = \"Done\" }", "{ ja = \"完了\" }"),
        ],
    );
    assert_errors(
        &src,
        &[
            "broken.toml:5: unknown role \"mayor\" in create_roles",
            "broken.toml:12: state \"done\" is missing its en label",
            "broken.toml:22: unknown effect \"fax\" in transition \"finish\"",
        ],
    );
}

#[test]
fn a_folder_with_two_files_for_one_id_and_version_is_refused() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("a.toml"), minimal())?;
    std::fs::write(dir.path().join("b.toml"), minimal())?;
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    assert_eq!(
        loaded(dir.path(), &Kinds::product()),
        Err(vec![format!(
            "{}:1: workflow \"minimal\" version 1 is also defined in {}",
            b.display(),
            a.display()
        )])
    );
    Ok(())
}

#[test]
fn a_changed_source_under_a_known_id_and_version_is_refused() {
    let kinds = Kinds::product();
    let compiled = |src: &str| {
        kinds
            .compile("minimal.toml", src)
            .map_err(|e| format!("{e:?}"))
    };
    let changed = edit(&minimal(), &[("Minimal process", "A minimal process")]);
    let mut set = WorkflowSet::default();
    assert_eq!(compiled(&minimal()).and_then(|rt| set.insert(rt)), Ok(()));
    // The same source again is harmless: it is the same definition.
    assert_eq!(compiled(&minimal()).and_then(|rt| set.insert(rt)), Ok(()));
    assert_eq!(
        compiled(&changed).and_then(|rt| set.insert(rt)),
        Err("workflow \"minimal\" version 1 was changed without a version bump".to_owned())
    );
    assert_eq!(set.len(), 1);
}

/// The `(id, version)` of every definition `load_dir` loads from `dir`, or its messages.
fn loaded(dir: &Path, kinds: &Kinds) -> Result<Vec<(String, u32)>, Vec<String>> {
    match load_dir(dir, kinds) {
        Ok(set) => Ok(set
            .iter()
            .map(|rt| (rt.id().to_owned(), rt.version()))
            .collect()),
        Err(list) => Err(list.iter().map(ToString::to_string).collect()),
    }
}

fn in_crate(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(folder)
}

#[test]
fn the_product_workflows_load_cleanly() {
    assert_eq!(
        loaded(&in_crate("workflows"), &Kinds::product()),
        Ok(vec![("subcontract_permission".to_owned(), 1)])
    );
}

#[test]
fn the_benchmark_workload_loads_with_its_kind_and_role() {
    let mut kinds = Kinds::product();
    kinds.vocabulary = Vocabulary::product().with_roles(&["staff"]);
    kinds.add(workload::registry);
    assert_eq!(
        loaded(&in_crate("benches"), &kinds),
        Ok(vec![("bench_workload".to_owned(), 1)])
    );
}
