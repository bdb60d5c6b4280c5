//! `jsonb` results assembled from their parts in Postgres' own binary form.
//!
//! A session answer is mostly the user JSON that SQL has just built as `jsonb`. Carrying it
//! through `serde_json` would print it to text, parse it, print it again and have `jsonb_in` parse
//! it once more; here the datum SQL returned is kept as it is and embedded in the answer.

use pgrx::pg_sys;
use pgrx::IntoDatum;
use serde_json::Value;

/// A `jsonb` datum allocated in the memory context of the function call that returns it.
pub struct Jsonb(pg_sys::Datum);

/// A member of an object built by [`Jsonb::object`].
pub enum Member<'a> {
    Text(&'a str),
    Int(i64),
    Jsonb(&'a Jsonb),
    /// The value of a top-level key of an object (`null` when it has none), copied as it is.
    Field(&'a Jsonb, &'a str),
    /// An object whose `omitempty` members are left out where null.
    OmitEmpty(&'a Jsonb, &'a OmitEmpty),
}

/// Members that Go's `omitempty` leaves out when null (GoTrue's JSON): `top` among an object's
/// own members, `nested.1` in the objects of the array under its member `nested.0`. SQL builds
/// them null, and they are dropped while the value is copied into its answer (which copies every
/// member anyway), instead of by a `jsonb_strip_nulls` and a concatenation in SQL.
pub struct OmitEmpty {
    pub top: &'static [&'static str],
    pub nested: (&'static str, &'static [&'static str]),
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
        // SAFETY: every JsonbValue handed to pushJsonbValue is initialised and points at data
        // (the Rust strings, numerics palloc'ed here, the embedded jsonb datums and their fields)
        // that lives until JsonbValueToJsonb has copied it into the new datum.
        unsafe {
            let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, std::ptr::null_mut());
            for (key, member) in members {
                let mut key = text(key);
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_KEY, &mut key);
                if let Member::OmitEmpty(value, omit) = member {
                    push_omitting(&mut state, value, omit);
                    continue;
                }
                let mut value = match member {
                    Member::Text(value) => text(value),
                    Member::Int(value) => {
                        let mut number: pg_sys::JsonbValue = std::mem::zeroed();
                        number.type_ = pg_sys::jbvType::jbvNumeric;
                        number.val.numeric = pg_sys::int64_to_numeric(*value);
                        number
                    }
                    // A container value is unpacked into the object being built.
                    Member::Jsonb(value) => value.binary(),
                    Member::Field(object, key) => {
                        let mut found: pg_sys::JsonbValue = std::mem::zeroed();
                        let hit = pg_sys::getKeyJsonValueFromContainer(
                            &mut (*object.header()).root,
                            key.as_ptr().cast(),
                            key.len() as i32,
                            &mut found,
                        );
                        if hit.is_null() {
                            found.type_ = pg_sys::jbvType::jbvNull;
                        }
                        found
                    }
                    Member::OmitEmpty(..) => unreachable!("pushed above"),
                };
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_VALUE, &mut value);
            }
            let object =
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_END_OBJECT, std::ptr::null_mut());
            Jsonb(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(object)))
        }
    }

    /// The one-element array `[{key: value, ...}]`.
    pub fn array_of_object(members: &[(&str, Member)]) -> Jsonb {
        let object = Jsonb::object(members);
        // SAFETY: as in `object`; the element is a live object datum, unpacked into the array.
        unsafe {
            let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY, std::ptr::null_mut());
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_ELEM, &mut object.binary());
            let array =
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_END_ARRAY, std::ptr::null_mut());
            Jsonb(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(array)))
        }
    }

    /// A copy of this object without its null `omitempty` members.
    pub fn omit_empty(&self, omit: &OmitEmpty) -> Jsonb {
        // SAFETY: as in `object`.
        unsafe {
            let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
            let object = push_omitting(&mut state, self, omit);
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

    /// The value as JSON text, as `jsonb` prints it.
    pub fn to_text(&self) -> String {
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

/// Pushes the object `value` token by token, as pushJsonbValue unpacks a container, but without
/// the null members that `omit` names; returns what the last push returned (the object, when it
/// is the whole value being built).
///
/// # Safety
/// `state` is a parse state that can take a value here; `value` is a live object datum.
unsafe fn push_omitting(
    state: &mut *mut pg_sys::JsonbParseState,
    value: &Jsonb,
    omit: &OmitEmpty,
) -> *mut pg_sys::JsonbValue {
    use pg_sys::JsonbIteratorToken::{
        Type, WJB_BEGIN_ARRAY, WJB_BEGIN_OBJECT, WJB_DONE, WJB_END_ARRAY, WJB_END_OBJECT, WJB_KEY, WJB_VALUE,
    };
    /// The key's bytes; they live in the container, as long as `value`.
    unsafe fn bytes<'a>(key: &pg_sys::JsonbValue) -> &'a [u8] {
        // SAFETY: a jbvString key from the iterator, pointing into the container.
        unsafe { std::slice::from_raw_parts(key.val.string.val.cast(), key.val.string.len as usize) }
    }
    let omitted = |depth: usize, top_key: &[u8], key: &[u8]| match depth {
        1 => omit.top.iter().any(|k| k.as_bytes() == key),
        3 => top_key == omit.nested.0.as_bytes() && omit.nested.1.iter().any(|k| k.as_bytes() == key),
        _ => false,
    };
    // SAFETY: per this function's contract; every token is pushed with the value the iterator
    // produced for it, as pushJsonbValue's own unpacking does.
    unsafe {
        let mut iterator = pg_sys::JsonbIteratorInit(&mut (*value.header()).root);
        let mut token_value: pg_sys::JsonbValue = std::mem::zeroed();
        let mut pending_key: Option<pg_sys::JsonbValue> = None;
        let mut top_key: &[u8] = b"";
        let mut depth = 0usize;
        let mut result = std::ptr::null_mut();
        loop {
            let token: Type = pg_sys::JsonbIteratorNext(&mut iterator, &mut token_value, false);
            match token {
                WJB_DONE => return result,
                WJB_KEY => {
                    if depth == 1 {
                        top_key = bytes(&token_value);
                    }
                    pending_key = Some(token_value);
                    continue;
                }
                WJB_VALUE if token_value.type_ == pg_sys::jbvType::jbvNull => {
                    if pending_key.is_some_and(|key| omitted(depth, top_key, bytes(&key))) {
                        pending_key = None;
                        continue;
                    }
                }
                _ => {}
            }
            if let Some(mut key) = pending_key.take() {
                pg_sys::pushJsonbValue(state, WJB_KEY, &mut key);
            }
            let scalar = token < WJB_BEGIN_ARRAY || (token == WJB_BEGIN_ARRAY && token_value.val.array.rawScalar);
            let argument = if scalar { &mut token_value as *mut _ } else { std::ptr::null_mut() };
            result = pg_sys::pushJsonbValue(state, token, argument);
            match token {
                WJB_BEGIN_ARRAY | WJB_BEGIN_OBJECT => depth += 1,
                WJB_END_ARRAY | WJB_END_OBJECT => depth -= 1,
                _ => {}
            }
        }
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
