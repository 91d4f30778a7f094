//! Taking the known fields out of an event object, checking each one's type.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// An event object being read; `at` prefixes the blamed field (`[3].` in a batch).
pub(super) struct Fields<'a> {
    obj: &'a mut Map<String, Value>,
    at: &'a str,
}

impl<'a> Fields<'a> {
    pub(super) fn new(obj: &'a mut Map<String, Value>, at: &'a str) -> Self {
        Self { obj, at }
    }

    pub(super) fn err(&self, name: &str, msg: &str) -> ApiError {
        ApiError::invalid_field(format!("{}{name}", self.at), format!("{name} {msg}"))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.obj.contains_key(name)
    }

    /// What is left once the known fields are taken.
    pub(super) fn rest(self) -> Map<String, Value> {
        std::mem::take(self.obj)
    }

    pub(super) fn any(&mut self, name: &str) -> Option<Value> {
        self.obj.remove(name).filter(|v| !v.is_null())
    }

    pub(super) fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.any(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(name, "must be a string")),
        }
    }

    /// A required id, as [`crate::ids::check`] accepts them.
    pub(super) fn id(&mut self, name: &str) -> Result<String, ApiError> {
        let id = self
            .string(name)?
            .ok_or_else(|| self.err(name, "is required"))?;
        crate::ids::check(&id).map_err(|why| self.err(name, &why))?;
        Ok(id)
    }

    /// An optional id (e.g. `parent_id`): when present, as [`Fields::id`].
    pub(super) fn optional_id(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let id = self.string(name)?;
        if let Some(id) = &id {
            crate::ids::check(id).map_err(|why| self.err(name, &why))?;
        }
        Ok(id)
    }

    pub(super) fn number(
        &mut self,
        name: &str,
        min: f64,
        max: f64,
    ) -> Result<Option<f64>, ApiError> {
        match self.any(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
                _ => Err(self.err(name, &format!("must be between {min} and {max}"))),
            },
            Some(_) => Err(self.err(name, "must be a number")),
        }
    }

    pub(super) fn count(&mut self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.any(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(name, "must be a non-negative integer")),
            Some(_) => Err(self.err(name, "must be a non-negative integer")),
        }
    }

    /// A time as Celery sends `eta`/`expires`: an ISO 8601 string (or epoch seconds).
    pub(super) fn time(&mut self, name: &str) -> Result<Option<Value>, ApiError> {
        match self.any(name) {
            None => Ok(None),
            Some(v @ (Value::String(_) | Value::Number(_))) => Ok(Some(v)),
            Some(_) => Err(self.err(name, "must be an ISO 8601 string or a number")),
        }
    }

    pub(super) fn object(&mut self, name: &str) -> Result<Map<String, Value>, ApiError> {
        match self.any(name) {
            None => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(self.err(name, "must be an object")),
        }
    }
}
