//! Typed DAG params: Airflow's `params`, with Rust types.
//!
//! A DAG declares its params with [`DagParam`]: a name, a Rust type, and optionally a
//! default and a description. A run triggered with a JSON `conf` gets the params
//! [`resolved`](Params::resolve) against them: every key of `conf` must be a declared
//! param whose value deserializes into the param's type, and defaults fill in the rest.
//! Tasks then read the values typed, from their context.
//!
//! ```
//! use flow_runtime::params::DagParam;
//! use flow_runtime::prelude::*;
//! use serde_json::json;
//!
//! #[task]
//! fn train() {}
//!
//! let mut dag = DagBuilder::new("training")
//!     .param(DagParam::new::<f64>("threshold").default(0.8).description("minimum accuracy"))
//!     .param(DagParam::new::<String>("models_dir").default("models"))
//!     .param(DagParam::new::<u32>("epochs"));
//! train::node(&mut dag);
//! let dag = dag.build().unwrap();
//!
//! let values = dag.params().resolve(Some(&json!({"epochs": 10}))).unwrap();
//! assert_eq!(values["threshold"], json!(0.8));
//! assert_eq!(values["models_dir"], json!("models"));
//! assert_eq!(values["epochs"], json!(10));
//!
//! let err = dag.params().resolve(Some(&json!({"epochs": "ten"}))).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "param `epochs` must be a `u32`: invalid type: string \"ten\", expected u32; \
//!      the params are: threshold: f64 = 0.8, models_dir: String = \"models\", epochs: u32 (required)"
//! );
//! ```
//!
//! A param without a default is required, except when its type accepts JSON `null`
//! (`Option<T>`, `()`): then a missing value is `null`.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A type a param can have: one that serde writes to and reads from JSON.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the type of a DAG param",
    label = "params must implement `Serialize + DeserializeOwned + 'static`: they are read from a run's JSON conf",
    note = "add `#[derive(Serialize, Deserialize)]` to the type (both are re-exported by `flow_runtime::prelude`)"
)]
pub trait ParamValue: Serialize + DeserializeOwned + 'static {}

impl<T: Serialize + DeserializeOwned + 'static> ParamValue for T {}

/// A value that can be the default of a param of type `T`: a `T`, or a `&str` for a
/// `String`.
#[diagnostic::on_unimplemented(
    message = "this default does not fit a param of type `{T}`",
    label = "expected a `{T}` value, found `{Self}`",
    note = "a param's default has the param's type (a string literal also fits a `String` param)"
)]
pub trait IntoParamDefault<T> {
    /// Converts the default.
    fn into_default(self) -> T;
}

impl<T> IntoParamDefault<T> for T {
    fn into_default(self) -> T {
        self
    }
}

impl IntoParamDefault<String> for &str {
    fn into_default(self) -> String {
        self.to_string()
    }
}

/// One declared param of a DAG: its name, its Rust type, and optionally a default and a
/// description. Made with [`DagParam::new`] and added with
/// [`DagBuilder::param`](crate::DagBuilder::param).
#[derive(Clone, Debug)]
pub struct DagParam {
    name: String,
    type_name: &'static str,
    default: Option<Value>,
    /// Why the default could not be stored, reported by `DagBuilder::build`.
    invalid_default: Option<String>,
    description: Option<String>,
    check: fn(&Value) -> Result<(), String>,
}

impl DagParam {
    /// A param named `name` whose values are `T`s; set its default and description on the
    /// returned [`TypedParam`].
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: ParamValue>(name: impl Into<String>) -> TypedParam<T> {
        TypedParam {
            param: DagParam {
                name: name.into(),
                type_name: std::any::type_name::<T>(),
                default: None,
                invalid_default: None,
                description: None,
                check: check_as::<T>,
            },
            _type: PhantomData,
        }
    }

    /// The param's name: its key in a run's `conf`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Rust type of its values, as `std::any::type_name` spells it
    /// (`alloc::string::String`).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The Rust type of its values without module paths (`String`, `Option<u32>`), as
    /// messages show it.
    pub fn short_type_name(&self) -> String {
        short_type_name(self.type_name)
    }

    /// The default, as JSON; `None` when the param has none.
    pub fn default_value(&self) -> Option<&Value> {
        self.default.as_ref()
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether `value` deserializes into the param's type; the reason (serde's) if not.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        (self.check)(value)
    }

    /// Why the default cannot be used (it does not serialize to JSON, or does not read
    /// back as the param's type), if it cannot.
    pub(crate) fn invalid_default(&self) -> Option<&str> {
        self.invalid_default.as_deref()
    }

    /// The value a run gets when its conf leaves the param out: the default, else `null`
    /// for a type that accepts it (`Option<T>`), else nothing (the param is required).
    fn fallback(&self) -> Option<Value> {
        self.default
            .clone()
            .or_else(|| self.check(&Value::Null).ok().map(|()| Value::Null))
    }

    /// `name: type = default`, `name: type (required)` or `name: type = null`.
    fn summary(&self) -> String {
        let ty = self.short_type_name();
        match self.fallback() {
            Some(value) => format!("{}: {ty} = {value}", self.name),
            None => format!("{}: {ty} (required)", self.name),
        }
    }
}

/// Whether `value` deserializes as a `T`.
fn check_as<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

/// A [`DagParam`] being declared, typed so that its default must be a `T`. Converts into
/// a `DagParam` (which [`DagBuilder::param`](crate::DagBuilder::param) does for you).
#[derive(Clone, Debug)]
pub struct TypedParam<T> {
    param: DagParam,
    _type: PhantomData<fn() -> T>,
}

impl<T: ParamValue> TypedParam<T> {
    /// The value a run gets when its conf does not set the param. A `String` param also
    /// takes a `&str`.
    #[must_use]
    pub fn default(mut self, value: impl IntoParamDefault<T>) -> Self {
        let value: T = value.into_default();
        match serde_json::to_value(&value) {
            Ok(json) => {
                self.param.invalid_default =
                    self.param.check(&json).err().map(|reason| {
                        format!("it does not read back from JSON ({json}): {reason}")
                    });
                self.param.default = Some(json);
            }
            Err(e) => {
                self.param.invalid_default = Some(format!("it does not serialize to JSON: {e}"));
                self.param.default = None;
            }
        }
        self
    }

    /// A description, shown by the CLI.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.param.description = Some(description.into());
        self
    }

    /// The untyped param.
    pub fn into_param(self) -> DagParam {
        self.param
    }
}

impl<T> From<TypedParam<T>> for DagParam {
    fn from(typed: TypedParam<T>) -> Self {
        typed.param
    }
}

/// The params of a DAG, in declaration order, with unique names. A built
/// [`Dag`](crate::Dag) has them as [`Dag::params`](crate::Dag::params).
#[derive(Clone, Debug, Default)]
pub struct Params {
    params: Vec<DagParam>,
}

impl Params {
    /// Params whose names were checked to be unique (by `DagBuilder::build`).
    pub(crate) fn from_checked(params: Vec<DagParam>) -> Self {
        Params { params }
    }

    /// The params, in declaration order.
    pub fn iter(&self) -> std::slice::Iter<'_, DagParam> {
        self.params.iter()
    }

    /// How many params the DAG declares.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the DAG declares no params.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The param with this name.
    pub fn get(&self, name: &str) -> Option<&DagParam> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The values of a run's params: `conf` checked against the declared params, with
    /// defaults for what it leaves out.
    ///
    /// `conf` is a JSON object or absent (JSON `null` counts as absent). Every key must
    /// be a declared param and every value must deserialize into its param's type; a
    /// param without a default must be set (unless its type accepts `null`, like
    /// `Option<T>`).
    ///
    /// # Errors
    ///
    /// The first problem found, checking in this order: conf is not an object, a key that
    /// is not a param, a value of the wrong type, a required param left out.
    pub fn resolve(&self, conf: Option<&Value>) -> Result<Map<String, Value>, ParamsError> {
        let empty = Map::new();
        let conf = match conf {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(ParamsError::NotAnObject {
                    found: json_kind(other),
                    params: self.summaries(),
                });
            }
        };
        if let Some(key) = conf.keys().find(|key| self.get(key).is_none()) {
            return Err(self.unknown(key));
        }
        let mut values = Map::new();
        for param in &self.params {
            match conf.get(&param.name) {
                Some(value) => {
                    if let Err(reason) = param.check(value) {
                        return Err(ParamsError::InvalidValue {
                            param: param.name.clone(),
                            type_name: param.short_type_name(),
                            reason,
                            params: self.summaries(),
                        });
                    }
                    values.insert(param.name.clone(), value.clone());
                }
                None => match param.fallback() {
                    Some(value) => {
                        values.insert(param.name.clone(), value);
                    }
                    None => {
                        return Err(ParamsError::Missing {
                            param: param.name.clone(),
                            type_name: param.short_type_name(),
                            params: self.summaries(),
                        });
                    }
                },
            }
        }
        Ok(values)
    }

    /// One line per param, for the CLI: `threshold: f64 = 0.8  -- minimum accuracy`,
    /// `epochs: u32 (required)`.
    pub fn describe(&self) -> Vec<String> {
        self.params
            .iter()
            .map(|param| match &param.description {
                Some(description) => format!("{}  -- {description}", param.summary()),
                None => param.summary(),
            })
            .collect()
    }

    fn summaries(&self) -> ParamList {
        ParamList(self.params.iter().map(DagParam::summary).collect())
    }

    /// The error for a conf key that is not a param: the params closest to it first.
    fn unknown(&self, key: &str) -> ParamsError {
        let mut scored: Vec<(f64, &DagParam)> = self
            .params
            .iter()
            .map(|p| (strsim::jaro_winkler(key, &p.name), p))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let suggestion = scored
            .first()
            .filter(|(score, _)| *score >= SUGGESTION_SCORE)
            .map(|(_, p)| p.name.clone());
        ParamsError::Unknown {
            key: key.to_string(),
            suggestion,
            params: ParamList(scored.into_iter().map(|(_, p)| p.summary()).collect()),
        }
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = &'a DagParam;
    type IntoIter = std::slice::Iter<'a, DagParam>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// How similar (Jaro-Winkler) an unknown key must be to a param's name to be offered as
/// "did you mean".
const SUGGESTION_SCORE: f64 = 0.8;

/// The declared params, as error messages end with them: `threshold: f64 = 0.8, epochs:
/// u32 (required)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamList(pub Vec<String>);

impl fmt::Display for ParamList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("the DAG declares no params")
        } else {
            write!(f, "the params are: {}", self.0.join(", "))
        }
    }
}

/// A run's conf that does not fit the DAG's params. Each message ends with the params.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// The conf is JSON, but not an object.
    #[error(
        "conf must be a JSON object of params, like {{\"name\": value}}, found {found}; {params}"
    )]
    NotAnObject {
        /// What it is instead: `an array`, `a string`, ...
        found: &'static str,
        /// The declared params.
        params: ParamList,
    },
    /// A conf key that is not a declared param.
    #[error(
        "conf sets `{key}`, which is not a param of this DAG{}; {params}",
        .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    Unknown {
        /// The key.
        key: String,
        /// The param it is probably a typo of.
        suggestion: Option<String>,
        /// The declared params, closest to `key` first.
        params: ParamList,
    },
    /// A value that does not deserialize into its param's type.
    #[error("param `{param}` must be a `{type_name}`: {reason}; {params}")]
    InvalidValue {
        /// The param.
        param: String,
        /// Its type.
        type_name: String,
        /// serde's reason.
        reason: String,
        /// The declared params.
        params: ParamList,
    },
    /// A param without a default that conf leaves out.
    #[error("param `{param}` ({type_name}) has no default, so conf must set it; {params}")]
    Missing {
        /// The param.
        param: String,
        /// Its type.
        type_name: String,
        /// The declared params.
        params: ParamList,
    },
}

/// `an array`, `a string`, ... for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `core::option::Option<alloc::string::String>` as `Option<String>`.
pub fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(word.rsplit("::").next().unwrap_or(word));
        word.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Params {
        Params::from_checked(vec![
            DagParam::new::<f64>("threshold")
                .default(0.8)
                .description("minimum accuracy")
                .into(),
            DagParam::new::<String>("models_dir")
                .default("models")
                .into(),
            DagParam::new::<u32>("epochs").into(),
        ])
    }

    const LIST: &str = "the params are: threshold: f64 = 0.8, models_dir: String = \"models\", epochs: u32 (required)";

    #[test]
    fn defaults_fill_what_conf_leaves_out() {
        let values = params().resolve(Some(&json!({"epochs": 3}))).unwrap();
        assert_eq!(
            Value::Object(values),
            json!({"threshold": 0.8, "models_dir": "models", "epochs": 3})
        );
        let values = params()
            .resolve(Some(
                &json!({"epochs": 3, "threshold": 0.95, "models_dir": "/m"}),
            ))
            .unwrap();
        assert_eq!(values["threshold"], json!(0.95));
        assert_eq!(values["models_dir"], json!("/m"));
        // No params, no conf: nothing to resolve.
        assert!(Params::default().resolve(None).unwrap().is_empty());
        assert!(
            Params::default()
                .resolve(Some(&json!({})))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn conf_must_be_an_object() {
        let err = params().resolve(Some(&json!([1, 2]))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "conf must be a JSON object of params, like {{\"name\": value}}, found an array; {LIST}"
            )
        );
        // `null` is no conf at all.
        let err = params().resolve(Some(&Value::Null)).unwrap_err();
        assert!(matches!(err, ParamsError::Missing { .. }), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named_with_the_closest_params_first() {
        let err = params()
            .resolve(Some(&json!({"epochs": 1, "treshold": 0.9})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf sets `treshold`, which is not a param of this DAG (did you mean `threshold`?); \
             the params are: threshold: f64 = 0.8, epochs: u32 (required), models_dir: String = \"models\""
        );
        let err = params().resolve(Some(&json!({"zzz": 1}))).unwrap_err();
        let ParamsError::Unknown { suggestion, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*suggestion, None);
        let err = Params::default()
            .resolve(Some(&json!({"x": 1})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "conf sets `x`, which is not a param of this DAG; the DAG declares no params"
        );
    }

    #[test]
    fn an_ill_typed_value_names_the_param_its_type_and_serdes_reason() {
        let err = params().resolve(Some(&json!({"epochs": -1}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "param `epochs` must be a `u32`: invalid value: integer `-1`, expected u32; {LIST}"
            )
        );
        let err = params()
            .resolve(Some(&json!({"epochs": 1, "threshold": "high"})))
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "param `threshold` must be a `f64`: invalid type: string \"high\", expected f64;"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_required_param_left_out_is_an_error() {
        let err = params().resolve(None).unwrap_err();
        assert_eq!(
            err,
            ParamsError::Missing {
                param: "epochs".into(),
                type_name: "u32".into(),
                params: params().summaries(),
            }
        );
        assert_eq!(
            err.to_string(),
            format!("param `epochs` (u32) has no default, so conf must set it; {LIST}")
        );
    }

    #[test]
    fn optional_types_default_to_null() {
        let params = Params::from_checked(vec![DagParam::new::<Option<u32>>("limit").into()]);
        assert_eq!(params.resolve(None).unwrap()["limit"], Value::Null);
        assert_eq!(
            params.resolve(Some(&json!({"limit": 5}))).unwrap()["limit"],
            json!(5)
        );
        assert_eq!(params.describe(), ["limit: Option<u32> = null"]);
    }

    #[test]
    fn structured_types_are_checked_whole() {
        #[derive(Serialize, serde::Deserialize)]
        struct Window {
            days: u32,
        }
        let params = Params::from_checked(vec![
            DagParam::new::<Window>("window")
                .default(Window { days: 7 })
                .into(),
            DagParam::new::<Vec<String>>("tables")
                .default(vec!["a".to_string()])
                .into(),
        ]);
        let values = params
            .resolve(Some(&json!({"window": {"days": 1}})))
            .unwrap();
        assert_eq!(values["tables"], json!(["a"]));
        let err = params
            .resolve(Some(&json!({"window": {"weeks": 1}})))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("param `window` must be a `Window`: missing field `days`"),
            "{err}"
        );
    }

    #[test]
    fn describe_gives_one_line_per_param() {
        assert_eq!(
            params().describe(),
            [
                "threshold: f64 = 0.8  -- minimum accuracy",
                "models_dir: String = \"models\"",
                "epochs: u32 (required)",
            ]
        );
    }

    #[test]
    fn defaults_that_do_not_round_trip_are_flagged() {
        let nan: DagParam = DagParam::new::<f64>("x").default(f64::NAN).into();
        assert!(
            nan.invalid_default()
                .unwrap()
                .contains("does not read back"),
            "{nan:?}"
        );
        let ok: DagParam = DagParam::new::<f64>("x").default(1.5).into();
        assert_eq!(ok.invalid_default(), None);
        assert_eq!(ok.default_value(), Some(&json!(1.5)));
        assert_eq!(ok.type_name(), "f64");
    }

    #[test]
    fn type_names_lose_their_module_paths() {
        assert_eq!(short_type_name("alloc::string::String"), "String");
        assert_eq!(
            short_type_name("core::option::Option<alloc::vec::Vec<alloc::string::String>>"),
            "Option<Vec<String>>"
        );
        assert_eq!(
            short_type_name("std::collections::hash::map::HashMap<alloc::string::String, u32>"),
            "HashMap<String, u32>"
        );
        assert_eq!(short_type_name("(f64, [u8; 4])"), "(f64, [u8; 4])");
    }
}
