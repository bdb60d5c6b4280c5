//! Several WeChat apps (`auth_wechat.apps`): the setting's checks, and one person across mini
//! programs, joined by unionid. The test cluster lists `MORE_APPS`, which every test's simulator
//! serves.

use crate::{as_user, claims, cluster, oauth_sign_in, sign_in_to, trial};
use auth_wechat_tests::rest::Caller;
use auth_wechat_tests::simstats::calls;
use auth_wechat_tests::{code, made_by, Rest, RpcError, TestDb, APPID, LITE, MOBILE_APP, OFFICIAL_ACCOUNT, WEBSITE};
use libtest_mimic::Trial;
use serde_json::{json, Value};
use std::sync::{Arc, Barrier};

pub fn tests() -> Vec<Trial> {
    vec![
        trial("apps::one_bad_app_refuses_only_its_own_calls", one_bad_app_refuses_only_its_own_calls),
        trial("apps::each_apps_access_token_is_its_own", each_apps_access_token_is_its_own),
        trial("apps::a_unionid_joins_two_mini_programs_into_one_user", a_unionid_joins_two_mini_programs_into_one_user),
        trial("apps::without_a_shared_unionid_apps_stay_apart", without_a_shared_unionid_apps_stay_apart),
        trial("apps::a_unionid_two_users_hold_is_a_conflict", a_unionid_two_users_hold_is_a_conflict),
        trial("apps::an_unknown_or_wrong_kind_of_app_is_refused", an_unknown_or_wrong_kind_of_app_is_refused),
        trial("apps::two_apps_of_one_person_at_once_make_one_user", two_apps_of_one_person_at_once_make_one_user),
        trial(
            "apps::official_account_website_and_app_join_the_mini_program_user",
            official_account_website_and_app_join_the_mini_program_user,
        ),
        trial("apps::snsapi_base_links_only_through_a_known_openid", snsapi_base_links_only_through_a_known_openid),
        trial("apps::a_profile_fills_a_new_users_metadata", a_profile_fills_a_new_users_metadata),
        trial("apps::oauth_refusals_come_before_or_from_wechat", oauth_refusals_come_before_or_from_wechat),
        trial("apps::authorize_urls_through_postgrest_style_calls", authorize_urls_through_postgrest_style_calls),
        trial("apps::an_unlinked_openid_signs_in_as_a_new_person", an_unlinked_openid_signs_in_as_a_new_person),
        trial(
            "apps::unlinking_the_default_app_empties_memfires_columns",
            unlinking_the_default_app_empties_memfires_columns,
        ),
        trial(
            "apps::unlink_refuses_others_identities_and_the_last_one",
            unlink_refuses_others_identities_and_the_last_one,
        ),
        trial("apps::a_user_binds_other_apps_explicitly", a_user_binds_other_apps_explicitly),
        trial("apps::a_stolen_access_token_cannot_unlink_and_bind", a_stolen_access_token_cannot_unlink_and_bind),
        trial("apps::phone_and_qr_codes_use_each_apps_own_token", phone_and_qr_codes_use_each_apps_own_token),
    ]
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser().query_one(sql, &[]).unwrap().get(0)
}

/// One bad app does not stop the others: a value that is not a JSON array refuses only the calls
/// that name an app of the list, an entry that cannot be used only its own app's (500
/// `configuration_invalid`, naming the setting and the app by position, never a secret, WeChat not
/// called), and the default mini program always works. `auth.wechat_check_settings()` reports each
/// problem at once, without a value.
fn one_bad_app_refuses_only_its_own_calls() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let default_appid: String = admin.query_one("SELECT current_setting('auth_wechat.appid')", &[]).unwrap().get(0);
    let lite_secret = auth_wechat_tests::MORE_APPS.iter().find(|(appid, _, _)| *appid == LITE).unwrap().1;
    let lite = json!({"appid": LITE, "secret": lite_secret, "type": "miniprogram"});
    let secret = "a-secret-of-another-app";
    let sign_in = |admin: &mut postgres::Client, appid: Option<&str>, user: &str| {
        let code = appid.map_or_else(|| code("ok", user), |appid| made_by(&code("ok", user), appid));
        admin.query_one("SELECT auth.wechat_sign_in($1, $2)", &[&code, &appid]).map(|_| ())
    };
    for (apps, broken, expected) in [
        (format!("[{lite}, {{\"appid\": \"wx1\""), LITE, "JSON array"),
        (json!([lite, {"appid": "wx1", "secret": secret, "type": "game"}]).to_string(), "wx1", "app 2 (wx1): type must be"),
        (json!([lite, {"appid": "wx1", "secret": secret, "type": "website"}, {"appid": "wx1", "secret": secret, "type": "website"}]).to_string(), "wx1", "the appid is configured twice"),
        (json!([lite, {"secret": secret, "type": "website"}]).to_string(), "wx9", "app 2: appid must be"),
        (json!([lite, {"appid": default_appid, "secret": secret, "type": "miniprogram"}]).to_string(), "", "app 2"),
    ] {
        admin.execute("SELECT set_config('auth_wechat.apps', $1, false)", &[&apps]).unwrap();
        sign_in(&mut admin, None, "main").unwrap_or_else(|e| panic!("the default app with {apps}: {e:?}"));
        if broken != LITE {
            sign_in(&mut admin, Some(LITE), "lite").unwrap_or_else(|e| panic!("a sound app with {apps}: {e:?}"));
        }
        if !broken.is_empty() {
            let before = calls(&db.sim_url(), "/sns/jscode2session");
            let error = sign_in(&mut admin, Some(broken), "broken").unwrap_err();
            let error = error.as_db_error().unwrap();
            assert_eq!(error.code().code(), "PT500", "{error:?}");
            let detail: Value = serde_json::from_str(error.detail().unwrap()).unwrap();
            assert_eq!(detail["error_code"], "configuration_invalid");
            assert!(error.message().contains("auth_wechat.apps") && error.message().contains(expected), "{}", error.message());
            assert!(!format!("{error:?}").contains(secret), "{error:?}");
            assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), before, "refused before WeChat was called");
        }
        let report: Value = admin.query_one("SELECT auth.wechat_check_settings()", &[]).unwrap().get(0);
        assert_eq!(report["ok"], false, "{report}");
        let problems = report["problems"].as_array().unwrap();
        assert!(
            problems.iter().any(|p| p["setting"] == "auth_wechat.apps" && p["problem"].as_str().unwrap().contains(expected)),
            "{report}"
        );
        assert!(!report.to_string().contains(secret) && !report.to_string().contains(lite_secret), "{report}");
    }
    admin.execute("SELECT set_config('auth_wechat.apps', $1, false)", &[&json!([lite]).to_string()]).unwrap();
    let report: Value = admin.query_one("SELECT auth.wechat_check_settings()", &[]).unwrap().get(0);
    assert_eq!(report, json!({"ok": true, "problems": []}));
    // A signing key that cannot sign is named for what it lacks.
    admin
        .execute(
            "SELECT set_config('auth_wechat.jwt_keys', $1, false)",
            &[&json!([{"kty": "EC", "alg": "ES256", "kid": "k1", "key_ops": ["sign"]}]).to_string()],
        )
        .unwrap();
    let report: Value = admin.query_one("SELECT auth.wechat_check_settings()", &[]).unwrap().get(0);
    assert_eq!(report["problems"][0]["setting"], "auth_wechat.jwt_keys", "{report}");
    assert!(report["problems"][0]["problem"].as_str().unwrap().contains("no crv"), "{report}");
}

/// The access-token tools of a second app: its token is seen, fetched and revoked alone.
fn each_apps_access_token_is_its_own() {
    let db = cluster().database(true);
    let mut admin = db.superuser();
    let status = |admin: &mut postgres::Client, appid: Option<&str>| -> Value {
        admin.query_one("SELECT auth.wechat_access_token_status($1)", &[&appid]).unwrap().get(0)
    };
    assert_eq!(status(&mut admin, Some(LITE))["cached"], false, "{}", status(&mut admin, Some(LITE)));
    admin.query_one("SELECT auth.wechat_refresh_access_token(appid => $1)", &[&LITE]).unwrap();
    assert_eq!(status(&mut admin, Some(LITE))["cached"], true);
    assert_eq!(status(&mut admin, None)["cached"], false, "the default app's is another");
    let fetched = calls(&db.sim_url(), "/cgi-bin/stable_token");
    admin.query_one("SELECT auth.wechat_refresh_access_token(true, $1)", &[&LITE]).unwrap();
    assert_eq!(calls(&db.sim_url(), "/cgi-bin/stable_token"), fetched + 1, "forced: fetched again");
    let unknown = admin.query_one("SELECT auth.wechat_access_token_status('wx9999')", &[]).unwrap_err();
    assert_eq!(unknown.code().map(|c| c.code()), Some("PT400"));
}

/// Sign-ins from the default mini program and the lite one with the same unionid are one user:
/// the second adds its identity (GoTrue's user JSON lists both), `identity_linked` is audited,
/// MemFire's columns keep the default app's openid, and each app's later sign-ins find the user.
fn a_unionid_joins_two_mini_programs_into_one_user() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let first = sign_in_to(&mut rest, APPID, &code("union", "ada")).unwrap();
    let linked = sign_in_to(&mut rest, LITE, &code("union", "ada")).unwrap();
    let user = &linked["user"];
    assert_eq!(user["id"], first["user"]["id"], "one person, one user");
    assert_eq!(user["wechat_id"], first["user"]["wechat_id"], "MemFire's columns describe the default app");
    let identities = user["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 2, "{identities:?}");
    let appids: Vec<&str> = identities.iter().map(|i| i["identity_data"]["appid"].as_str().unwrap()).collect();
    assert!(appids.contains(&APPID) && appids.contains(&LITE), "{appids:?}");
    assert!(identities.iter().all(|i| i["provider"] == "wechat_mini"));
    assert_ne!(identities[0]["id"], identities[1]["id"], "an openid per app");
    assert_eq!(identities[0]["identity_data"]["unionid"], identities[1]["identity_data"]["unionid"]);
    assert_eq!(user["app_metadata"]["providers"], json!(["wechat_mini"]));
    assert_eq!(claims(&linked)["sub"], user["id"]);
    let id = user["id"].as_str().unwrap();
    let linked_rows = count(
        &db,
        &format!(
            "SELECT count(*) FROM auth.audit_log_entries
              WHERE payload ->> 'action' = 'identity_linked' AND payload ->> 'actor_id' = '{id}'"
        ),
    );
    assert_eq!(linked_rows, 1);
    // Again from either app, with or without a unionid in the answer: the same user.
    for (appid, kind) in [(LITE, "ok"), (APPID, "ok"), (LITE, "union")] {
        let again = sign_in_to(&mut rest, appid, &code(kind, "ada")).unwrap();
        assert_eq!(again["user"]["id"], id, "{appid} {kind}");
    }
    assert_eq!(count(&db, &format!("SELECT count(*) FROM auth.identities WHERE user_id = '{id}'")), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), 1);
}

/// No unionid (the app is not bound to the same Open Platform account), or linking turned off:
/// each app's openid is a person of its own, with no MemFire columns for another app's.
fn without_a_shared_unionid_apps_stay_apart() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let main = sign_in_to(&mut rest, APPID, &code("ok", "bea")).unwrap();
    let lite = sign_in_to(&mut rest, LITE, &code("ok", "bea")).unwrap();
    assert_ne!(main["user"]["id"], lite["user"]["id"], "no unionid: nothing links");
    assert_eq!(lite["user"]["wechat_id"], "", "the default app's column stays empty");
    assert_eq!(lite["user"]["identities"][0]["identity_data"]["appid"], LITE);
    db.set("auth_wechat.link_by_unionid", "off");
    let mut rest = db.rest();
    let main = sign_in_to(&mut rest, APPID, &code("union", "cy")).unwrap();
    let lite = sign_in_to(&mut rest, LITE, &code("union", "cy")).unwrap();
    assert_ne!(main["user"]["id"], lite["user"]["id"], "link_by_unionid off");
}

/// A unionid that two users already hold (imported data): a new openid with it names no one.
/// 409 `wechat_unionid_conflict`, and nothing is written.
fn a_unionid_two_users_hold_is_a_conflict() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let first = sign_in_to(&mut rest, APPID, &code("union", "dee")).unwrap();
    let other = sign_in_to(&mut rest, APPID, &code("ok", "eve")).unwrap();
    let unionid = first["user"]["wechat_unionid"].as_str().unwrap().to_string();
    let other_id = other["user"]["id"].as_str().unwrap().to_string();
    db.superuser()
        .execute("UPDATE auth.users SET wechat_unionid = $1 WHERE id = $2::text::uuid", &[&unionid, &other_id])
        .unwrap();
    let rows = "SELECT (SELECT count(*) FROM auth.users) * 1000 + (SELECT count(*) FROM auth.identities)";
    let before = count(&db, rows);
    let error = sign_in_to(&mut rest, LITE, &code("union", "dee")).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (409, "wechat_unionid_conflict"), "{error:?}");
    assert_eq!(count(&db, rows), before, "nothing written");
}

/// An appid the database does not know, or one that is not a mini program: 400
/// `validation_failed`, before WeChat is called.
fn an_unknown_or_wrong_kind_of_app_is_refused() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    for appid in ["wx0000000000000000", OFFICIAL_ACCOUNT] {
        let error = sign_in_to(&mut rest, appid, &code("ok", "fay")).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "validation_failed"), "{appid}: {error:?}");
    }
    assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), 0);
}

/// The same person signing in from two mini programs at the same moment, several times over:
/// each time one user, holding both identities.
fn two_apps_of_one_person_at_once_make_one_user() {
    let db = Arc::new(cluster().database(true));
    for round in 0..4 {
        let person = format!("gus{round}");
        let barrier = Arc::new(Barrier::new(4));
        let workers: Vec<_> = [APPID, LITE, APPID, LITE]
            .into_iter()
            .map(|appid| {
                let (db, barrier, person) = (Arc::clone(&db), Arc::clone(&barrier), person.clone());
                std::thread::spawn(move || {
                    let mut rest = db.rest();
                    barrier.wait();
                    // The simulator answers all four after the same delay.
                    sign_in_to(&mut rest, appid, &code("slowunion.150", &person))
                })
            })
            .collect();
        let ids: std::collections::HashSet<String> = workers
            .into_iter()
            .map(|w| w.join().unwrap().expect("every sign-in succeeds")["user"]["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
        let id = ids.into_iter().next().unwrap();
        assert_eq!(count(&db, &format!("SELECT count(*) FROM auth.identities WHERE user_id = '{id}'")), 2);
    }
    assert_eq!(count(&db, "SELECT count(*) FROM auth.users"), 4);
}

/// A person who signed in with the mini program signs in on the official account's H5 page
/// (`snsapi_userinfo`), on the website (`snsapi_login`) and in the app: one user with four
/// identities, each with its provider and the profile WeChat sent; the user access token is in
/// no answer.
fn official_account_website_and_app_join_the_mini_program_user() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let mini = sign_in_to(&mut rest, APPID, &code("union", "hana")).unwrap();
    let id = mini["user"]["id"].clone();
    let mut answers = Vec::new();
    for (appid, kind, provider) in [
        (OFFICIAL_ACCOUNT, "userinfo", "wechat_official"),
        (WEBSITE, "login", "wechat_web"),
        (MOBILE_APP, "userinfo", "wechat_app"),
    ] {
        let session = oauth_sign_in(&mut rest, appid, &code(kind, "hana")).unwrap();
        assert_eq!(session["user"]["id"], id, "{appid}");
        assert_eq!(claims(&session)["sub"], id);
        let identity = session["user"]["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["provider"] == provider)
            .unwrap_or_else(|| panic!("no {provider} identity: {session}"))
            .clone();
        assert_eq!(identity["identity_data"]["appid"], appid);
        assert_eq!(identity["identity_data"]["nickname"], "hana 微信");
        assert_eq!(identity["identity_data"]["name"], "hana 微信");
        let avatar = identity["identity_data"]["avatar_url"].as_str().unwrap();
        assert!(avatar.starts_with("https://thirdwx.qlogo.cn/"), "{avatar}");
        assert_eq!(identity["identity_data"]["picture"], avatar);
        answers.push(session.to_string());
    }
    let user = db.rest().rpc("wechat_user", json!({}), &crate::as_user(&mini)).unwrap();
    let mut providers: Vec<&str> =
        user["identities"].as_array().unwrap().iter().map(|i| i["provider"].as_str().unwrap()).collect();
    providers.sort();
    assert_eq!(providers, ["wechat_app", "wechat_mini", "wechat_official", "wechat_web"]);
    assert_eq!(
        user["app_metadata"]["providers"],
        json!(["wechat_mini", "wechat_official", "wechat_web", "wechat_app"]),
        "each linked app's provider, in the order they came"
    );
    assert_eq!(user["user_metadata"], json!({}), "an existing user's metadata is theirs, not WeChat's");
    let secrets: Value =
        ureq::get(&format!("{}/__sim/secrets", db.sim_url())).call().unwrap().into_body().read_json().unwrap();
    for token in secrets["access_tokens"].as_array().unwrap() {
        for answer in &answers {
            assert!(!answer.contains(token.as_str().unwrap()), "a WeChat token in an answer");
        }
    }
}

/// `snsapi_base` brings no unionid: a person's first base sign-in on the official account is a
/// new user; once a userinfo sign-in has linked the account's openid to them, base sign-ins find
/// them through it. Neither calls `sns/userinfo`.
fn snsapi_base_links_only_through_a_known_openid() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let mini = sign_in_to(&mut rest, APPID, &code("union", "ivo")).unwrap();
    let stranger = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("base", "jon")).unwrap();
    assert_eq!(stranger["user"]["identities"][0]["provider"], "wechat_official");
    assert!(stranger["user"]["identities"][0]["identity_data"].get("nickname").is_none());
    assert_eq!(calls(&db.sim_url(), "/sns/userinfo"), 0);
    let linked = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("userinfo", "ivo")).unwrap();
    assert_eq!(linked["user"]["id"], mini["user"]["id"]);
    let base = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("base", "ivo")).unwrap();
    assert_eq!(base["user"]["id"], mini["user"]["id"], "the official account's openid is known now");
    assert_eq!(calls(&db.sim_url(), "/sns/userinfo"), 1);
}

/// A person new to the database who signs in on the website: a new user whose `user_metadata`
/// has the profile's `name` and `avatar_url`, as GoTrue fills a new OAuth user's.
fn a_profile_fills_a_new_users_metadata() {
    let db = cluster().database(true);
    let session = oauth_sign_in(&mut db.rest(), WEBSITE, &code("login", "kai")).unwrap();
    let user = &session["user"];
    assert_eq!(user["app_metadata"], json!({"provider": "wechat_web", "providers": ["wechat_web"]}));
    assert_eq!(user["user_metadata"]["name"], "kai 微信");
    assert!(user["user_metadata"]["avatar_url"].as_str().unwrap().starts_with("https://"));
    assert_eq!(user["wechat_id"], "", "MemFire's columns are the default mini program's");
}

/// A missing or mini-program appid and a bad code are refused before WeChat is called; a used
/// code is WeChat's 40163, 400 `invalid_credentials`.
fn oauth_refusals_come_before_or_from_wechat() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let missing = rest
        .rpc("wechat_oauth_sign_in", json!({"code": code("base", "lev"), "appid": null}), &Caller::Anon)
        .unwrap_err();
    assert_eq!((missing.status, missing.error_code().as_str()), (400, "validation_failed"), "{missing:?}");
    for (appid, code) in [(APPID, code("base", "lev")), (LITE, code("base", "lev")), (WEBSITE, "a b".to_string())] {
        let error = oauth_sign_in(&mut rest, appid, &code).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "validation_failed"), "{appid}: {error:?}");
    }
    assert_eq!(calls(&db.sim_url(), "/sns/oauth2/access_token"), 0);
    let used = code("base", "lev");
    oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &used).unwrap();
    let again = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &used).unwrap_err();
    assert_eq!((again.status, again.error_code().as_str()), (400, "invalid_credentials"));
    assert!(again.message.contains("already used"), "{}", again.message);
}

/// `wechat_authorize_url` as PostgREST calls it, for the anonymous role: WeChat's URLs with the
/// redirect URI encoded and no secret; a mini program or a bad scope refused.
fn authorize_urls_through_postgrest_style_calls() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let mut url = |body: Value| rest.rpc("wechat_authorize_url", body, &Caller::Anon);
    let official = url(
        json!({"appid": OFFICIAL_ACCOUNT, "redirect_uri": "https://h5.example.com/wx?from=menu", "state": "abc123def456ghi789"}),
    )
    .unwrap();
    assert_eq!(
        official,
        json!(format!(
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid={OFFICIAL_ACCOUNT}\
             &redirect_uri=https%3A%2F%2Fh5%2Eexample%2Ecom%2Fwx%3Ffrom%3Dmenu&response_type=code\
             &scope=snsapi_base&state=abc123def456ghi789#wechat_redirect"
        ))
    );
    let state = "0123456789abcdef";
    let website = url(json!({"appid": WEBSITE, "redirect_uri": "https://www.example.com/", "state": state})).unwrap();
    assert!(website.as_str().unwrap().starts_with("https://open.weixin.qq.com/connect/qrconnect?"), "{website}");
    let secret = auth_wechat_tests::MORE_APPS.iter().find(|(appid, _, _)| *appid == WEBSITE).unwrap().1;
    assert!(!website.to_string().contains(secret));
    for body in [
        json!({"appid": APPID, "redirect_uri": "https://a.b/", "state": state}),
        json!({"appid": OFFICIAL_ACCOUNT, "redirect_uri": "https://a.b/", "state": state, "scope": "snsapi_login"}),
        // A guessable or missing CSRF value, and a plain-HTTP redirect off this machine.
        json!({"appid": OFFICIAL_ACCOUNT, "redirect_uri": "https://a.b/", "state": ""}),
        json!({"appid": OFFICIAL_ACCOUNT, "redirect_uri": "https://a.b/", "state": "abc123"}),
        json!({"appid": OFFICIAL_ACCOUNT, "redirect_uri": "http://h5.example.com/wx", "state": state}),
    ] {
        let error = url(body.clone()).unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "validation_failed"), "{body}");
    }
}

/// `POST /rpc/wechat_unlink_identity {"identity_id"}` as the holder of `session`.
fn unlink(rest: &mut Rest, session: &Value, identity_id: &Value) -> Result<Value, RpcError> {
    rest.rpc("wechat_unlink_identity", json!({ "identity_id": identity_id }), &as_user(session))
}

/// The identity of `appid` among the user's.
fn identity_of(user: &Value, appid: &str) -> Value {
    user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["identity_data"]["appid"] == appid)
        .unwrap_or_else(|| panic!("no identity of {appid}: {user}"))
        .clone()
}

/// A user of two mini programs unlinks the lite one: it is gone from the user (audited), and the
/// lite program's next sign-in, though its unionid is the user's, is a new person; the default
/// app still signs the user in.
fn an_unlinked_openid_signs_in_as_a_new_person() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    sign_in_to(&mut rest, APPID, &code("union", "max")).unwrap();
    let session = sign_in_to(&mut rest, LITE, &code("union", "max")).unwrap();
    let lite = identity_of(&session["user"], LITE);
    let user = unlink(&mut rest, &session, &lite["identity_id"]).unwrap();
    assert_eq!(user["identities"].as_array().unwrap().len(), 1, "{user}");
    assert_eq!(user["identities"][0]["identity_data"]["appid"], APPID);
    assert_eq!(user["app_metadata"]["providers"], json!(["wechat_mini"]), "a mini program identity is left");
    let id = user["id"].as_str().unwrap().to_string();
    let unlinked = count(
        &db,
        &format!(
            "SELECT count(*) FROM auth.audit_log_entries
              WHERE payload ->> 'action' = 'identity_unlinked' AND payload ->> 'actor_id' = '{id}'
                AND payload -> 'traits' ->> 'provider_id' = '{}'",
            lite["id"].as_str().unwrap()
        ),
    );
    assert_eq!(unlinked, 1);
    let stranger = sign_in_to(&mut rest, LITE, &code("union", "max")).unwrap();
    assert_ne!(stranger["user"]["id"], id, "not linked back by its unionid");
    let again = sign_in_to(&mut rest, APPID, &code("union", "max")).unwrap();
    assert_eq!(again["user"]["id"], id);
}

/// The takeover of a user who has WeChat already: with the victim's access token, unlink their
/// mini-program identity, bind one's own WeChat, and sign in as them for good. By default binds
/// and unlinks need a sign-in within 10 minutes; with binds opened up (`0`), unlinks still do. A
/// fresh sign-in may do both, and both are audited.
fn a_stolen_access_token_cannot_unlink_and_bind() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    sign_in_to(&mut rest, APPID, &code("union", "vic")).unwrap();
    let victim = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("userinfo", "vic")).unwrap();
    let user_id = victim["user"]["id"].as_str().unwrap().to_string();
    let mini = identity_of(&victim["user"], APPID);
    // The victim's session was started 15 minutes ago; its token (refreshed since) is stolen.
    db.superuser()
        .batch_execute(
            "UPDATE auth.sessions SET created_at = created_at - interval '15 minutes';
             UPDATE auth.mfa_amr_claims SET updated_at = updated_at - interval '15 minutes';",
        )
        .unwrap();
    let stolen = crate::refresh(&db, &crate::token(&victim)).unwrap();
    let spent = calls(&db.sim_url(), "/sns/jscode2session");
    let needs_sign_in = |result: Result<Value, RpcError>, what: &str| {
        let error = result.unwrap_err();
        assert_eq!((error.status, error.error_code().as_str()), (400, "reauthentication_needed"), "{what}");
    };
    needs_sign_in(unlink(&mut rest, &stolen, &mini["identity_id"]), "unlink by default");
    needs_sign_in(
        rest.rpc("wechat_bind_account", json!({"code": code("ok", "thief")}), &as_user(&stolen)),
        "bind by default",
    );
    db.set("auth_wechat.bind_requires_sign_in_within", "0");
    let mut rest = db.rest();
    needs_sign_in(unlink(&mut rest, &stolen, &mini["identity_id"]), "unlink with binds opened up");
    assert_eq!(calls(&db.sim_url(), "/sns/jscode2session"), spent, "no code was spent");
    let mine = sign_in_to(&mut rest, APPID, &code("union", "vic")).unwrap();
    assert_eq!(mine["user"]["id"], user_id.as_str(), "the victim is still the mini program's user");

    // The user themselves, just signed in: unlink and bind again, each audited.
    let fresh = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("userinfo", "vic")).unwrap();
    unlink(&mut rest, &fresh, &mini["identity_id"]).unwrap();
    rest.rpc("wechat_bind_account", json!({"code": code("union", "vic")}), &as_user(&fresh)).unwrap();
    let audited = |action: &str| {
        count(
            &db,
            &format!(
                "SELECT count(*) FROM auth.audit_log_entries
                  WHERE payload ->> 'action' = '{action}' AND payload ->> 'actor_id' = '{user_id}'"
            ),
        )
    };
    assert_eq!(audited("identity_unlinked"), 1);
    assert!(audited("identity_linked") >= 2, "the official account's link, and the bind");
}

/// Unlinking the default mini program's identity (the user keeps the official account's) empties
/// MemFire's columns and moves `app_metadata.provider` to what is left; binding the default app
/// again brings the openid back, and forgets the unlink.
fn unlinking_the_default_app_empties_memfires_columns() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let mini = sign_in_to(&mut rest, APPID, &code("union", "nia")).unwrap();
    let session = oauth_sign_in(&mut rest, OFFICIAL_ACCOUNT, &code("userinfo", "nia")).unwrap();
    let default = identity_of(&session["user"], APPID);
    let user = unlink(&mut rest, &session, &default["identity_id"]).unwrap();
    assert_eq!((&user["wechat_id"], &user["wechat_unionid"]), (&json!(""), &json!("")));
    assert_eq!(user["app_metadata"]["provider"], "wechat_official");
    assert_eq!(user["app_metadata"]["providers"], json!(["wechat_official"]));
    let bound = rest.rpc("wechat_bind_account", json!({"code": code("union", "nia")}), &as_user(&session)).unwrap();
    assert_eq!(bound["wechat_id"], mini["user"]["wechat_id"], "bound again");
    let remembered = count(
        &db,
        &format!(
            "SELECT count(*) FROM auth.identities WHERE user_id = '{}' AND identity_data -> 'unlinked_openids' ? '{}'",
            user["id"].as_str().unwrap(),
            mini["user"]["wechat_id"].as_str().unwrap()
        ),
    );
    assert_eq!(remembered, 0, "binding again forgets the unlink");
}

/// Another user's identity: 404, nothing removed; the last identity: 422; no session: 401.
fn unlink_refuses_others_identities_and_the_last_one() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    // The caller has two identities, so that only the ownership check can refuse the first unlink.
    sign_in_to(&mut rest, APPID, &code("union", "oli")).unwrap();
    let owner = sign_in_to(&mut rest, LITE, &code("union", "oli")).unwrap();
    let other = sign_in_to(&mut rest, APPID, &code("union", "pia")).unwrap();
    sign_in_to(&mut rest, LITE, &code("union", "pia")).unwrap();
    let theirs = identity_of(&other["user"], APPID);
    let identities = "SELECT count(*) FROM auth.identities";
    let before = count(&db, identities);
    let error = unlink(&mut rest, &owner, &theirs["identity_id"]).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (404, "identity_not_found"), "{error:?}");
    assert_eq!(count(&db, identities), before, "nothing removed");
    // A phone identity of the caller's own is not a WeChat one: not found either.
    let phone: String = db
        .superuser()
        .query_one(
            "INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
             VALUES ($1::text, $1::text::uuid, jsonb_build_object('sub', $1::text), 'phone', now(), now()) RETURNING id::text",
            &[&owner["user"]["id"].as_str().unwrap()],
        )
        .unwrap()
        .get(0);
    let before = count(&db, identities);
    let error = unlink(&mut rest, &owner, &json!(phone)).unwrap_err();
    assert_eq!((error.status, error.error_code().as_str()), (404, "identity_not_found"), "a phone identity: {error:?}");
    assert_eq!(count(&db, identities), before, "nothing removed");
    let lone = sign_in_to(&mut rest, APPID, &code("ok", "ole")).unwrap();
    let mine = identity_of(&lone["user"], APPID);
    let last = unlink(&mut rest, &lone, &mine["identity_id"]).unwrap_err();
    assert_eq!((last.status, last.error_code().as_str()), (422, "single_identity_not_deletable"), "{last:?}");
    let anonymous =
        rest.rpc("wechat_unlink_identity", json!({"identity_id": mine["identity_id"]}), &Caller::Anon).unwrap_err();
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(count(&db, identities), before + 1, "nothing removed (one more: the lone user's)");
}

/// Without a shared unionid, a signed-in user binds the lite mini program (`wechat_bind_account`
/// with its appid) and the official account (`wechat_oauth_bind`, with the profile); another
/// openid of the lite program is then 422, and an openid another user holds 409.
fn a_user_binds_other_apps_explicitly() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let session = sign_in_to(&mut rest, APPID, &code("ok", "quin")).unwrap();
    let caller = as_user(&session);
    let lite = rest
        .rpc("wechat_bind_account", json!({"code": made_by(&code("ok", "quin"), LITE), "appid": LITE}), &caller)
        .unwrap();
    assert_eq!(identity_of(&lite, LITE)["provider"], "wechat_mini");
    let official = rest
        .rpc(
            "wechat_oauth_bind",
            json!({"code": made_by(&code("userinfo", "quin"), OFFICIAL_ACCOUNT), "appid": OFFICIAL_ACCOUNT}),
            &caller,
        )
        .unwrap();
    let identity = identity_of(&official, OFFICIAL_ACCOUNT);
    assert_eq!(
        (&identity["provider"], &identity["identity_data"]["nickname"]),
        (&json!("wechat_official"), &json!("quin 微信"))
    );
    assert_eq!(official["app_metadata"]["providers"], json!(["wechat_mini", "wechat_official"]));
    assert_eq!(official["wechat_id"], session["user"]["wechat_id"], "MemFire's columns stay the default app's");
    let again = rest
        .rpc("wechat_bind_account", json!({"code": made_by(&code("ok", "quin"), LITE), "appid": LITE}), &caller)
        .unwrap();
    assert_eq!(again["identities"].as_array().unwrap().len(), 3, "binding the same openid again changes nothing");
    let other = rest
        .rpc("wechat_bind_account", json!({"code": made_by(&code("ok", "rex"), LITE), "appid": LITE}), &caller)
        .unwrap_err();
    assert_eq!((other.status, other.error_code().as_str()), (422, "wechat_already_bound"), "{other:?}");
    let someone = sign_in_to(&mut rest, LITE, &code("ok", "sal")).unwrap();
    let stranger = sign_in_to(&mut rest, APPID, &code("ok", "tam")).unwrap();
    let taken = rest
        .rpc(
            "wechat_bind_account",
            json!({"code": made_by(&code("ok", "sal"), LITE), "appid": LITE}),
            &as_user(&stranger),
        )
        .unwrap_err();
    assert_eq!((taken.status, taken.error_code().as_str()), (409, "identity_already_exists"), "{taken:?}");
    assert_ne!(someone["user"]["id"], stranger["user"]["id"]);
}

/// The phone button and the QR code of the lite mini program go out with the lite program's access
/// token: one token fetch per app, each app's token in its own cache slot.
fn phone_and_qr_codes_use_each_apps_own_token() {
    let db = cluster().database(true);
    let mut rest = db.rest();
    let session = sign_in_to(&mut rest, LITE, &code("ok", "uma")).unwrap();
    let phone = rest.rpc(
        "wechat_bind_phone",
        json!({"code": made_by(&code("phone.86.13700000511", ""), LITE), "appid": LITE}),
        &as_user(&session),
    );
    assert_eq!(phone.unwrap()["phone"], "8613700000511");
    // A code of the lite app traded with the default app's token: WeChat's 40029, as a client that
    // forgot the appid would get.
    let forgot = rest.rpc(
        "wechat_bind_phone",
        json!({"code": made_by(&code("phone.86.13700000512", ""), LITE)}),
        &as_user(&session),
    );
    let forgot = forgot.unwrap_err();
    assert_eq!((forgot.status, forgot.error_code().as_str()), (400, "invalid_credentials"));
    let service = Caller::Claims(json!({"role": "service_role"}));
    for appid in [Value::Null, json!(LITE), json!(LITE)] {
        let image = rest.rpc("wechat_unlimited_qrcode", json!({"scene": "a=1", "appid": appid}), &service).unwrap();
        assert!(image["imgBase64"].is_string(), "{appid}");
    }
    assert_eq!(calls(&db.sim_url(), "/cgi-bin/stable_token"), 2, "one token for each app, each cached");
    let wrong = rest.rpc("wechat_unlimited_qrcode", json!({"scene": "a", "appid": WEBSITE}), &service).unwrap_err();
    assert_eq!((wrong.status, wrong.error_code().as_str()), (400, "validation_failed"));
}
