//! Guards and effects that every context kind has.

use super::engine::holds;
use super::registry::{EffectCheck, GuardInput, Registry, Unmet, WorkflowContext};

pub(crate) fn register<C: WorkflowContext>(r: &mut Registry<C>) {
    r.simple_guard(
        "actor_is_submitter",
        |i: &GuardInput<'_, C>, unmet: &mut Vec<Unmet>| {
            if i.actor.id != i.instance.submitter {
                unmet.push(Unmet::new(
                    "not_submitter",
                    "申請者本人だけが実行できます",
                    "Only the submitter may do this",
                ));
            }
        },
    );
    r.simple_guard(
        "actor_not_submitter",
        |i: &GuardInput<'_, C>, unmet: &mut Vec<Unmet>| {
            if i.actor.id == i.instance.submitter {
                unmet.push(Unmet::new(
                    "submitter_cannot_approve",
                    "申請者本人は決裁できません",
                    "The submitter may not approve their own application",
                ));
            }
        },
    );
    r.simple_guard(
        "current_step_actor",
        |i: &GuardInput<'_, C>, unmet: &mut Vec<Unmet>| {
            let step = i
                .instance
                .progress
                .route
                .as_deref()
                .and_then(|rp| rp.steps.get(rp.current));
            let ok = step.is_some_and(|s| {
                s.roles()
                    .iter()
                    .any(|role| holds(i.actor.grants, role, s.org.as_ref(), &i.instance.ctx))
            });
            if !ok {
                unmet.push(Unmet::new(
                    "not_current_step_actor",
                    "現在の決裁段階の担当者ではありません",
                    "You are not an approver of the current step",
                ));
            }
        },
    );
    r.effect("notify", validate_notify);
    r.effect("start_timer", validate_timer);
    r.effect("cancel_timer", validate_timer);
    r.effect("write_document", validate_document);
}

fn only_keys(params: &toml::Table, allowed: &[&str]) -> Result<(), String> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown parameter \"{k}\" (allowed: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn str_param<'a>(params: &'a toml::Table, key: &str) -> Result<&'a str, String> {
    params
        .get(key)
        .and_then(toml::Value::as_str)
        .ok_or_else(|| format!("parameter \"{key}\" (a string) is required"))
}

fn validate_notify(params: &toml::Table, check: &EffectCheck<'_>) -> Result<(), String> {
    only_keys(params, &["to", "template", "role"])?;
    let template = str_param(params, "template")?;
    if !check.vocabulary.templates.contains(template) {
        return Err(format!("unknown template \"{template}\""));
    }
    let to: Vec<&str> = match params.get("to") {
        Some(toml::Value::String(s)) => vec![s.as_str()],
        Some(toml::Value::Array(a)) => a.iter().filter_map(toml::Value::as_str).collect(),
        _ => return Err("parameter \"to\" (a recipient or a list) is required".into()),
    };
    if to.is_empty() {
        return Err("parameter \"to\" names no recipient".into());
    }
    for r in &to {
        if !check.vocabulary.recipients.contains(*r) {
            return Err(format!("unknown recipient \"{r}\""));
        }
    }
    if to.contains(&"role_holders") {
        let role = str_param(params, "role")
            .map_err(|_| "recipient \"role_holders\" needs the parameter \"role\"".to_owned())?;
        if !check.vocabulary.roles.contains(role) {
            return Err(format!("unknown role \"{role}\""));
        }
    }
    Ok(())
}

fn validate_timer(params: &toml::Table, check: &EffectCheck<'_>) -> Result<(), String> {
    only_keys(params, &["timer"])?;
    let timer = str_param(params, "timer")?;
    if check.timers.iter().any(|t| t == timer) {
        Ok(())
    } else {
        Err(format!("unknown timer \"{timer}\""))
    }
}

fn validate_document(params: &toml::Table, _check: &EffectCheck<'_>) -> Result<(), String> {
    only_keys(params, &["document"])?;
    let doc = str_param(params, "document")?;
    if crate::domain::DOCUMENT_KINDS.contains(&doc) {
        Ok(())
    } else {
        Err(format!("unknown document \"{doc}\""))
    }
}
