//! Uuids: fresh ones, GoTrue's instance id, and their text as Postgres prints it.

use pgrx::Uuid;

/// GoTrue's single-instance id: GoTrue does not see users (or audit rows, or refresh tokens) with
/// another one.
pub const INSTANCE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A random (v4) uuid from the OS CSPRNG.
pub fn new_uuid() -> Uuid {
    Uuid::from_bytes(*uuid::Uuid::new_v4().as_bytes())
}

/// A uuid as Postgres prints it (lower case, hyphenated). `Display` would go through the
/// formatter once per byte, which costs more here than the rest of reading a row.
pub fn uuid_text(id: Uuid) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::from_bytes(*id.as_bytes()).hyphenated().encode_lower(&mut buffer).to_string()
}
