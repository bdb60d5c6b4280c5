//! `jsonb` results assembled from their parts in Postgres' own binary form.
//!
//! A session answer is mostly the user JSON that SQL has just built as `jsonb`. Carrying it
//! through `serde_json` would print it to text, parse it, print it again and have `jsonb_in` parse
//! it once more; here the datum SQL returned is kept as it is and embedded in the answer.

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
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
                let mut value = match member {
                    Member::Text(value) => text(value),
                    Member::Int(value) => {
                        let mut number: pg_sys::JsonbValue = std::mem::zeroed();
                        number.type_ = pg_sys::jbvType::jbvNumeric;
                        number.val.numeric = pg_sys::int64_to_numeric(*value);
                        number
                    }
                    // A container value is unpacked into the object being built.
                    Member::Jsonb(value) => {
                        let jsonb = value.header();
                        let mut binary: pg_sys::JsonbValue = std::mem::zeroed();
                        binary.type_ = pg_sys::jbvType::jbvBinary;
                        binary.val.binary.data = &mut (*jsonb).root;
                        binary.val.binary.len = pgrx::varsize_any_exhdr(jsonb.cast()) as i32;
                        binary
                    }
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
                };
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_VALUE, &mut value);
            }
            let object =
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_END_OBJECT, std::ptr::null_mut());
            Jsonb(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(object)))
        }
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

// SAFETY: the datum is returned as the function's result, as BoxRet requires.
unsafe impl BoxRet for Jsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: a live jsonb datum in the call's memory context.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

// SAFETY: Jsonb is passed to and from Postgres as a jsonb datum.
unsafe impl SqlTranslatable for Jsonb {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Jsonb);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}
