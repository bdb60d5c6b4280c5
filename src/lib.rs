//! auth_wechat: WeChat sign-in for Supabase Auth, inside PostgreSQL, from every WeChat surface
//! (mini programs, official accounts, websites, mobile apps).
//!
//! `lib.rs` only wires the modules together; see the README for the SQL API.

mod api;
mod apps;
mod audit;
mod bind;
mod budget;
mod bulkhead;
mod check;
mod error;
mod gucs;
mod hook;
mod http;
mod identity;
mod ids;
mod import;
mod jsonb;
mod mint;
mod privilege;
mod refresh;
mod request;
mod revoked;
mod scan;
mod scan_ticket;
mod schema;
mod session;
mod shmem;
mod sign_in;
mod signing;
mod spent;
mod spi;
mod store;
mod subxact;
mod token_cache;
mod token_v2;
mod user;
mod wechat;

pgrx::pg_module_magic!(name, version);

#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    token_cache::init();
    bulkhead::init();
    revoked::init();
    budget::init();
    spent::init();
}

pgrx::extension_sql_file!("../sql/api.sql", name = "api", finalize);

// `cargo pgrx test` creates the extension in an empty database: give it Supabase Auth's schema.
#[cfg(feature = "pg_test")]
pgrx::extension_sql_file!("../sql/gotrue_schema.sql", name = "test_gotrue_schema", bootstrap);

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'auth_wechat'"]
    }
}
