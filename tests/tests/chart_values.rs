//! The chart's values.schema.json and values.yaml describe the same values: every value of values.yaml is a property
//! of the schema, with a description and a type its default fits, and every property of the schema is in
//! values.yaml. The schema's own objects are closed (`additionalProperties: false`, so that helm refuses a
//! misspelt value such as `activator.replica`); the Kubernetes-shaped values (resources, affinity, ...) are open and
//! not looked into. No cluster and no helm: e2e_chart.rs runs `helm lint --strict`, which validates values.yaml
//! against the schema in full.

use std::path::Path;

use serde_json::Value;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

fn values() -> Value {
    serde_saphyr::from_str(&repo_file("deploy/runway/values.yaml")).expect("values.yaml parses")
}

fn schema() -> Value {
    serde_json::from_str(&repo_file("deploy/runway/values.schema.json")).expect("values.schema.json parses")
}

/// Properties of the schema that values.yaml leaves out on purpose, with the reason.
const ONLY_IN_SCHEMA: [(&str, &str); 1] = [(
    "global",
    "Helm's global values, which a parent chart passes down: without it, the chart could not be a dependency",
)];

/// Values of Kubernetes shapes, passed through to the objects as they are: the schema keeps them open.
const KUBERNETES_SHAPED: [&str; 11] = [
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "podAnnotations",
    "podLabels",
    "extraEnv",
    "parentRefs",
    "annotations",
    "labels",
];

/// `schema`, or the definition its `$ref` names (`#/definitions/NAME`, the only references the schema uses).
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
            let definition = &root["definitions"][name];
            assert!(definition.is_object(), "$ref {reference} names no definition");
            resolve(definition, root)
        }
        None => schema,
    }
}

fn is_closed(schema: &Value) -> bool {
    schema["additionalProperties"] == Value::Bool(false)
}

/// The JSON types a schema admits: its `type` (one or a list), or those of its `anyOf` branches.
fn admitted_types(schema: &Value, root: &Value) -> Vec<String> {
    let schema = resolve(schema, root);
    match (&schema["type"], schema["anyOf"].as_array()) {
        (Value::String(one), _) => vec![one.clone()],
        (Value::Array(many), _) => many.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        (_, Some(branches)) => branches.iter().flat_map(|b| admitted_types(b, root)).collect(),
        _ => vec![],
    }
}

fn fits(value: &Value, types: &[String]) -> bool {
    types.iter().any(|t| match t.as_str() {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        "null" => value.is_null(),
        other => panic!("unknown schema type {other}"),
    })
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Walks values.yaml and the schema side by side, collecting every mismatch.
fn compare(values: &Value, schema: &Value, root: &Value, path: &str, problems: &mut Vec<String>) {
    let schema = resolve(schema, root);
    if !is_closed(schema) {
        return;
    }
    let (Some(values), Some(properties)) = (values.as_object(), schema["properties"].as_object()) else {
        problems.push(format!(
            "{path}: a closed object in the schema, with properties, and a mapping in values.yaml"
        ));
        return;
    };
    for (key, value) in values {
        let at = join(path, key);
        let Some(property) = properties.get(key) else {
            problems.push(format!("{at}: in values.yaml, not in the schema"));
            continue;
        };
        let described = property["description"].is_string() || resolve(property, root)["description"].is_string();
        if !described {
            problems.push(format!("{at}: no description in the schema"));
        }
        let types = admitted_types(property, root);
        if types.is_empty() {
            problems.push(format!("{at}: no type in the schema"));
        } else if !fits(value, &types) {
            problems.push(format!("{at}: values.yaml has {value}, the schema admits {types:?}"));
        }
        compare(value, property, root, &at, problems);
    }
    for key in properties.keys() {
        let skipped = path.is_empty() && ONLY_IN_SCHEMA.iter().any(|(name, _)| name == key);
        if !values.contains_key(key) && !skipped {
            problems.push(format!("{}: in the schema, not in values.yaml", join(path, key)));
        }
    }
}

#[test]
fn every_value_is_in_the_schema_and_every_schema_property_is_a_value() {
    let (values, schema) = (values(), schema());
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "the schema is draft-07"
    );
    let mut problems = vec![];
    compare(&values, &schema, &schema, "", &mut problems);
    assert!(
        problems.is_empty(),
        "values.yaml and values.schema.json differ:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_properties_only_in_the_schema_are_really_not_values() {
    let values = values();
    for (name, why) in ONLY_IN_SCHEMA {
        assert!(!why.is_empty());
        assert!(
            values.get(name).is_none(),
            "{name} is in values.yaml now: drop it from ONLY_IN_SCHEMA"
        );
        assert!(schema()["properties"][name].is_object(), "{name} is not in the schema");
    }
}

/// Every object of the schema with properties of its own is closed, and every Kubernetes-shaped value is open.
#[test]
fn the_charts_objects_are_closed_and_kubernetes_objects_open() {
    fn walk(schema: &Value, root: &Value, path: &str, problems: &mut Vec<String>, seen_open: &mut Vec<String>) {
        let schema = resolve(schema, root);
        let name = path.rsplit('.').next().unwrap_or_default();
        if KUBERNETES_SHAPED.contains(&name) {
            let items = resolve(&schema["items"], root);
            if is_closed(schema) || is_closed(items) {
                problems.push(format!("{path}: Kubernetes-shaped, yet closed"));
            }
            seen_open.push(name.to_owned());
            return;
        }
        if let Some(properties) = schema["properties"].as_object() {
            if !is_closed(schema) {
                problems.push(format!(
                    "{path}: an object of the chart's own without additionalProperties: false"
                ));
            }
            for (key, child) in properties {
                walk(child, root, &join(path, key), problems, seen_open);
            }
        }
    }
    let schema = schema();
    let mut problems = vec![];
    let mut seen_open = vec![];
    for (key, child) in schema["properties"].as_object().unwrap() {
        walk(child, &schema, key, &mut problems, &mut seen_open);
    }
    assert!(is_closed(&schema), "the top level is closed");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for name in KUBERNETES_SHAPED {
        assert!(seen_open.iter().any(|s| s == name), "no value {name} in the schema");
    }
}

/// The walk reaches the leaves: a few values from each level, so that a schema that stopped early (an object left
/// open by mistake) is noticed.
#[test]
fn the_walk_reaches_nested_values() {
    let schema = schema();
    for path in [
        "activator.connections.maxHeaderBytes",
        "activator.backends.probe.fastInterval",
        "operator.image.digest",
        "image.registry",
        "crds.keep",
        "rbac.aggregateToDefaultRoles",
        "tests.image.name",
        "ingress.tls.mappedDomains",
    ] {
        let mut node = &schema;
        for key in path.split('.') {
            let object = resolve(node, &schema);
            assert!(is_closed(object), "{path}: the object holding {key} is closed");
            node = &object["properties"][key];
            assert!(node.is_object(), "{path}: {key} is a property");
        }
    }
}
