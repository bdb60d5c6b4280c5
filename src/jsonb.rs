//! `jsonb` results assembled from their parts in Postgres' own binary form.
//!
//! A session answer is the user's row, a signed token and a few numbers. Rendering the user in
//! SQL and carrying it through `serde_json` would print it to text, parse it, print it again and
//! have `jsonb_in` parse it once more; here the answer is pushed member by member, straight from
//! the values the statements returned, into one `jsonb` datum.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::IntoDatum;
use serde_json::Value;

/// A `jsonb` datum allocated in the memory context of the function call that returns it.
pub struct Jsonb(pg_sys::Datum);

/// A value of an object or array built by [`Jsonb::object`].
pub enum Member<'a> {
    Null,
    Bool(bool),
    Text(&'a str),
    Int(i64),
    /// Written as `to_jsonb` writes a `timestamptz`: ISO 8601, in the session's time zone.
    Timestamp(TimestampWithTimeZone),
    /// Copied as it is.
    Jsonb(&'a Jsonb),
    Object(Vec<(&'a str, Member<'a>)>),
    Array(Vec<Member<'a>>),
}

impl Member<'_> {
    /// A timestamp, or `null` for SQL's.
    pub fn timestamp_or_null(timestamp: Option<TimestampWithTimeZone>) -> Self {
        timestamp.map_or(Member::Null, Member::Timestamp)
    }
}

impl Jsonb {
    /// Takes a non-null `jsonb` value of a row that SPI returned, detoasted and copied out of SPI's
    /// memory (which ends with the SPI connection) into the caller's.
    ///
    /// # Safety
    /// Call inside the SPI connection that returned `datum`, a `jsonb` value.
    pub unsafe fn from_spi(datum: pg_sys::Datum) -> Jsonb {
        // SAFETY: per this function's contract; jsonb is a varlena (by reference, length -1). It
        // is detoasted before the copy, so every `Jsonb` holds a plain datum.
        unsafe {
            let plain = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
            Jsonb(pg_sys::SPI_datumTransfer(pg_sys::Datum::from(plain), false, -1))
        }
    }

    /// The object `{key: value, ...}`; keys are stored sorted, as `jsonb` always stores them.
    pub fn object(members: &[(&str, Member)]) -> Jsonb {
        let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
        // SAFETY: a fresh parse state takes an object as its whole value; the members point at
        // data (Rust strings, live `jsonb` datums, palloc'ed text) that outlives it and that
        // JsonbValueToJsonb copies into the new datum.
        unsafe {
            let object = push_object(&mut state, members);
            Jsonb(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(object)))
        }
    }

    /// This container as a value to push: pushJsonbValue unpacks it into what is being built.
    fn binary(&self) -> pg_sys::JsonbValue {
        let jsonb = self.header();
        // SAFETY: an all-zero JsonbValue is a valid jbvNull; the binary fields are set next, to
        // this live datum's root container.
        unsafe {
            let mut binary: pg_sys::JsonbValue = std::mem::zeroed();
            binary.type_ = pg_sys::jbvType::jbvBinary;
            binary.val.binary.data = &mut (*jsonb).root;
            binary.val.binary.len = pgrx::varsize_any_exhdr(jsonb.cast()) as i32;
            binary
        }
    }

    /// The datum, to return as a function's result.
    pub fn into_datum(self) -> pg_sys::Datum {
        self.0
    }

    /// The value as JSON text, as `jsonb` prints it, to embed in serialised JSON.
    pub fn to_raw_json(&self) -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string(self.to_text()).expect("Postgres prints valid JSON")
    }

    /// The value as JSON text, as `jsonb` prints it.
    fn to_text(&self) -> String {
        // SAFETY: a live jsonb datum; JsonbToCString pallocs the text, copied here before return.
        unsafe {
            let jsonb = self.header();
            let text = pg_sys::JsonbToCString(
                std::ptr::null_mut(),
                &mut (*jsonb).root,
                pgrx::varsize_any_exhdr(jsonb.cast()) as i32,
            );
            std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }

    /// The datum as a `Jsonb` header: every `Jsonb` holds a plain (detoasted) datum, from
    /// `from_spi`, `jsonb_in` or `JsonbValueToJsonb`.
    fn header(&self) -> *mut pg_sys::Jsonb {
        self.0.cast_mut_ptr()
    }

    /// The value as `serde_json` sees it, for tests.
    #[cfg(any(test, feature = "pg_test"))]
    pub fn to_value(&self) -> Value {
        // SAFETY: self.0 is a live, non-null jsonb datum.
        unsafe { <pgrx::JsonB as pgrx::FromDatum>::from_datum(self.0, false) }
            .map(|pgrx::JsonB(value)| value)
            .unwrap_or(Value::Null)
    }
}

/// Pushes an object; returns what its last push returned (the object, when it is the whole value
/// being built).
///
/// # Safety
/// `state` can take a value here. Every member points at data (Rust strings, live `jsonb` datums)
/// that outlives the parse state.
unsafe fn push_object(state: &mut *mut pg_sys::JsonbParseState, members: &[(&str, Member)]) -> *mut pg_sys::JsonbValue {
    use pg_sys::JsonbIteratorToken::{WJB_BEGIN_OBJECT, WJB_END_OBJECT, WJB_KEY, WJB_VALUE};
    // SAFETY: per this function's contract.
    unsafe {
        pg_sys::pushJsonbValue(state, WJB_BEGIN_OBJECT, std::ptr::null_mut());
        for (key, member) in members {
            pg_sys::pushJsonbValue(state, WJB_KEY, &mut text(key));
            push(state, member, WJB_VALUE);
        }
        pg_sys::pushJsonbValue(state, WJB_END_OBJECT, std::ptr::null_mut())
    }
}

/// Pushes one value as `token`: `WJB_VALUE` in an object, `WJB_ELEM` in an array.
///
/// # Safety
/// As `push_object`.
unsafe fn push(state: &mut *mut pg_sys::JsonbParseState, member: &Member, token: pg_sys::JsonbIteratorToken::Type) {
    use pg_sys::JsonbIteratorToken::{WJB_BEGIN_ARRAY, WJB_ELEM, WJB_END_ARRAY};
    // SAFETY: per this function's contract; an all-zero JsonbValue is a valid jbvNull.
    unsafe {
        let mut value: pg_sys::JsonbValue = std::mem::zeroed();
        match member {
            Member::Object(members) => {
                push_object(state, members);
                return;
            }
            Member::Array(elements) => {
                pg_sys::pushJsonbValue(state, WJB_BEGIN_ARRAY, std::ptr::null_mut());
                for element in elements {
                    push(state, element, WJB_ELEM);
                }
                pg_sys::pushJsonbValue(state, WJB_END_ARRAY, std::ptr::null_mut());
                return;
            }
            Member::Null => value.type_ = pg_sys::jbvType::jbvNull,
            Member::Bool(flag) => {
                value.type_ = pg_sys::jbvType::jbvBool;
                value.val.boolean = *flag;
            }
            Member::Text(string) => value = text(string),
            Member::Int(number) => {
                value.type_ = pg_sys::jbvType::jbvNumeric;
                value.val.numeric = pg_sys::int64_to_numeric(*number);
            }
            Member::Timestamp(timestamp) => {
                let datum = timestamp.into_datum().expect("a timestamp datum is never null");
                // palloc'ed in the current memory context, which outlives the parse state.
                let encoded =
                    pg_sys::JsonEncodeDateTime(std::ptr::null_mut(), datum, pg_sys::TIMESTAMPTZOID, std::ptr::null());
                value.type_ = pg_sys::jbvType::jbvString;
                value.val.string.len = std::ffi::CStr::from_ptr(encoded).to_bytes().len() as i32;
                value.val.string.val = encoded;
            }
            // A container is unpacked into the value being built.
            Member::Jsonb(jsonb) => value = jsonb.binary(),
        }
        pg_sys::pushJsonbValue(state, token, &mut value);
    }
}

/// A JSON string pointing at `value`'s bytes (not copied: they must outlive the JsonbValue).
fn text(value: &str) -> pg_sys::JsonbValue {
    // SAFETY: an all-zero JsonbValue is a valid jbvNull; the string fields are set next.
    let mut string: pg_sys::JsonbValue = unsafe { std::mem::zeroed() };
    string.type_ = pg_sys::jbvType::jbvString;
    string.val.string.len = value.len() as i32;
    string.val.string.val = value.as_ptr() as *mut std::ffi::c_char;
    string
}

impl From<Value> for Jsonb {
    fn from(value: Value) -> Jsonb {
        Jsonb(pgrx::JsonB(value).into_datum().expect("a jsonb datum is never null"))
    }
}
