//! A small JSON Schema (2020-12 subset) validator for the keywords
//! `schemas/prediction.schema.json` uses.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

/// `schemas/<name>` parsed.
pub fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(super::repo_root().join("schemas").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every violation of `schema` (the document root) by `v`, as `path: message`.
pub fn errors(schema: &Value, v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    validate(schema, schema, v, "$", &mut out);
    out
}

fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
    let path = reference.strip_prefix("#/").unwrap();
    path.split('/').fold(root, |v, part| &v[part])
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    let mut err = |m: String| errors.push(format!("{at}: {m}"));
    for (key, rule) in s {
        match key.as_str() {
            "$ref" => {
                let mut e = Vec::new();
                validate(root, resolve(root, rule.as_str().unwrap()), v, at, &mut e);
                e.into_iter().for_each(&mut err);
            }
            "type" => {
                let ok = match rule {
                    Value::String(t) => type_matches(t, v),
                    Value::Array(ts) => ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)),
                    _ => panic!("bad type rule"),
                };
                if !ok {
                    err(format!("{v} is not of type {rule}"));
                }
            }
            "const" => {
                if v != rule {
                    err(format!("{v} is not {rule}"));
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(v) {
                    err(format!("{v} not in {rule}"));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(x), Some(b)) = (v.as_f64(), rule.as_f64()) {
                    let ok = if key == "minimum" { x >= b } else { x <= b };
                    if !ok {
                        err(format!("{x} violates {key} {b}"));
                    }
                }
            }
            "pattern" => {
                if let Some(t) = v.as_str() {
                    let re = fancy_regex::Regex::new(rule.as_str().unwrap()).unwrap();
                    if !re.is_match(t).unwrap() {
                        err(format!("{t:?} does not match {rule}"));
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in rule.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            err(format!("missing required {r}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (k, sub) in rule.as_object().unwrap() {
                        if let Some(child) = o.get(k) {
                            let mut e = Vec::new();
                            validate(root, sub, child, &format!("{at}.{k}"), &mut e);
                            e.into_iter().for_each(&mut err);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = s.get("properties").and_then(Value::as_object);
                    for (k, child) in o {
                        if known.is_some_and(|p| p.contains_key(k)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => err(format!("unknown key {k:?}")),
                            Value::Bool(true) => {}
                            sub => {
                                let mut e = Vec::new();
                                validate(root, sub, child, &format!("{at}.{k}"), &mut e);
                                e.into_iter().for_each(&mut err);
                            }
                        }
                    }
                }
            }
            "propertyNames" => {
                if let Some(o) = v.as_object() {
                    for k in o.keys() {
                        let mut e = Vec::new();
                        validate(
                            root,
                            rule,
                            &Value::String(k.clone()),
                            &format!("{at}[{k}]"),
                            &mut e,
                        );
                        e.into_iter().for_each(&mut err);
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, item) in a.iter().enumerate() {
                        let mut e = Vec::new();
                        validate(root, rule, item, &format!("{at}[{i}]"), &mut e);
                        e.into_iter().for_each(&mut err);
                    }
                }
            }
            "oneOf" => {
                let passing = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        validate(root, sub, v, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing != 1 {
                    err(format!("matches {passing} of oneOf, need exactly 1"));
                }
            }
            "$schema" | "$id" | "title" | "description" | "default" | "$defs" => {}
            other => panic!("validator does not implement keyword {other}"),
        }
    }
}
