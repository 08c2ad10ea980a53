//! The rules of accounts and sessions, without a runtime or a clock.

use proptest::prelude::*;

use super::*;

const LIFETIMES: Lifetimes = Lifetimes {
    access_token: 1_000,
    session_idle: 10_000,
    session_absolute: 100_000,
};

const BOUNDS: SessionBounds = SessionBounds {
    per_account: 3,
    total: 100,
};

fn hash(n: u32) -> TokenHash {
    let mut bytes = [0; 32];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    TokenHash(bytes)
}

fn session_id(n: u32) -> SessionId {
    SessionId::parse(&format!("{n:024}")).unwrap()
}

fn account_id(n: u32) -> AccountId {
    AccountId::from(&format!("a{n}")).unwrap()
}

fn tables_with_account(n: u32) -> Tables {
    let mut tables = Tables::default();
    tables
        .create(
            Tables::new_account(
                account_id(n),
                format!("guest-{n}"),
                None,
                None,
                Some(hash(9000 + n)),
                0,
            ),
            10,
        )
        .unwrap();
    tables
}

fn login(tables: &mut Tables, account: u32, n: u32, now: u64) -> SessionId {
    let tokens = NewTokens {
        session: session_id(n),
        access: hash(n * 10),
        refresh: hash(n * 10 + 1),
    };
    tables
        .start_session(&account_id(account), tokens, &LIFETIMES, BOUNDS, now)
        .unwrap()
        .id
}

#[test]
fn an_access_token_names_its_account_until_it_expires() {
    let mut tables = tables_with_account(1);
    let session = login(&mut tables, 1, 1, 0);
    let bearer = tables.authenticate(&hash(10), &LIFETIMES, 999).unwrap();
    assert_eq!(bearer.account, account_id(1));
    assert_eq!(bearer.session, session);
    assert_eq!(
        tables.authenticate(&hash(10), &LIFETIMES, 1_000),
        Err(TokenRefused::Expired)
    );
    assert_eq!(
        tables.authenticate(&hash(11), &LIFETIMES, 5),
        Err(TokenRefused::Unknown)
    );
    tables.check_consistent();
}

#[test]
fn refreshing_rotates_both_tokens_and_a_reused_refresh_token_revokes_the_session() {
    let mut tables = tables_with_account(1);
    let session = login(&mut tables, 1, 1, 0);
    tables
        .refresh(&hash(11), hash(100), hash(101), &LIFETIMES, 500)
        .unwrap();
    tables.check_consistent();
    assert_eq!(
        tables.authenticate(&hash(10), &LIFETIMES, 600),
        Err(TokenRefused::Unknown)
    );
    assert!(tables.authenticate(&hash(100), &LIFETIMES, 600).is_ok());
    // The old refresh token again: theft assumed, the whole session ends.
    assert_eq!(
        tables
            .refresh(&hash(11), hash(200), hash(201), &LIFETIMES, 700)
            .map(|s| s.id),
        Err(TokenRefused::Reused)
    );
    assert!(tables.session(&session).is_none());
    assert_eq!(
        tables.authenticate(&hash(100), &LIFETIMES, 700),
        Err(TokenRefused::Unknown)
    );
    assert_eq!(
        tables
            .refresh(&hash(101), hash(300), hash(301), &LIFETIMES, 700)
            .map(|s| s.id),
        Err(TokenRefused::Unknown)
    );
    tables.check_consistent();
}

#[test]
fn an_idle_session_ends_and_use_keeps_it_alive_up_to_its_absolute_lifetime() {
    let mut tables = tables_with_account(1);
    login(&mut tables, 1, 1, 0);
    // Used within the idle lifetime (refresh every 9 s), it lives until the absolute limit.
    let mut refresh = hash(11);
    let mut now = 0;
    for step in 0..20u32 {
        now += 9_000;
        let result = tables.refresh(
            &refresh,
            hash(1000 + 2 * step),
            hash(1001 + 2 * step),
            &LIFETIMES,
            now,
        );
        if now >= 100_000 {
            assert_eq!(result.map(|s| s.id), Err(TokenRefused::Expired), "at {now}");
            break;
        }
        assert!(result.is_ok(), "at {now}");
        refresh = hash(1001 + 2 * step);
    }
    assert_eq!(tables.sweep(&LIFETIMES, now), 1);
    assert_eq!(tables.session_count(), 0);
    // Unused, it ends after the idle lifetime, by the sweep.
    login(&mut tables, 1, 2, 200_000);
    assert_eq!(tables.sweep(&LIFETIMES, 209_999), 0);
    assert_eq!(tables.sweep(&LIFETIMES, 210_000), 1);
    tables.check_consistent();
}

#[test]
fn a_session_used_since_it_was_filed_is_filed_again_not_ended() {
    let mut tables = tables_with_account(1);
    login(&mut tables, 1, 1, 0);
    tables.authenticate(&hash(10), &LIFETIMES, 900).unwrap();
    assert_eq!(tables.sweep(&LIFETIMES, 10_000), 0);
    assert_eq!(tables.session_count(), 1);
    assert_eq!(tables.sweep(&LIFETIMES, 10_900), 1);
    tables.check_consistent();
}

#[test]
fn the_session_limit_ends_the_least_recently_used_session() {
    let mut tables = tables_with_account(1);
    let first = login(&mut tables, 1, 1, 0);
    let second = login(&mut tables, 1, 2, 1);
    login(&mut tables, 1, 3, 2);
    // Refreshing the first makes the second the stalest.
    tables
        .refresh(&hash(11), hash(500), hash(501), &LIFETIMES, 3)
        .unwrap();
    login(&mut tables, 1, 4, 4);
    assert!(tables.session(&first).is_some());
    assert!(tables.session(&second).is_none());
    assert_eq!(tables.sessions_of(&account_id(1)).len(), 3);
    tables.check_consistent();
}

#[test]
fn past_the_total_the_session_nearest_its_end_goes() {
    let mut tables = Tables::default();
    for n in 1..=3 {
        tables
            .create(
                Tables::new_account(account_id(n), "g".into(), None, None, None, 0),
                10,
            )
            .unwrap();
    }
    let bounds = SessionBounds {
        per_account: 3,
        total: 2,
    };
    let start = |tables: &mut Tables, account: u32, n: u32, now: u64| {
        let tokens = NewTokens {
            session: session_id(n),
            access: hash(n * 10),
            refresh: hash(n * 10 + 1),
        };
        tables
            .start_session(&account_id(account), tokens, &LIFETIMES, bounds, now)
            .unwrap()
            .id
    };
    let first = start(&mut tables, 1, 1, 0);
    let second = start(&mut tables, 2, 2, 500);
    let third = start(&mut tables, 3, 3, 900);
    assert_eq!(tables.session_count(), 2);
    assert!(tables.session(&first).is_none());
    assert!(tables.session(&second).is_some() && tables.session(&third).is_some());
    tables.check_consistent();
}

#[test]
fn usernames_are_unique_regardless_of_case_and_a_guest_registers_in_place() {
    let mut tables = tables_with_account(1);
    tables
        .register(
            &account_id(1),
            Username::parse("Ann").unwrap(),
            "hash".to_owned(),
        )
        .unwrap();
    let account = tables.account(&account_id(1)).unwrap();
    assert_eq!(account.display_name, "Ann");
    assert!(!account.is_guest());
    assert!(
        tables.account_by_device(&hash(9001)).is_none(),
        "the device secret retires with the upgrade"
    );
    assert_eq!(
        tables.register(
            &account_id(1),
            Username::parse("Other").unwrap(),
            "h".to_owned()
        ),
        Err(AccountRefused::AlreadyRegistered)
    );
    let taken = Tables::new_account(
        account_id(2),
        "x".into(),
        Some(Username::parse("ANN").unwrap()),
        None,
        None,
        0,
    );
    assert_eq!(tables.create(taken, 10), Err(AccountRefused::UsernameTaken));
    assert_eq!(
        tables
            .account_by_username(&Username::parse("aNN").unwrap())
            .map(|a| a.id),
        Some(account_id(1))
    );
}

#[test]
fn deleting_an_account_removes_its_sessions_and_indexes() {
    let mut tables = tables_with_account(1);
    login(&mut tables, 1, 1, 0);
    login(&mut tables, 1, 2, 0);
    assert!(tables.delete(&account_id(1)));
    assert!(!tables.delete(&account_id(1)));
    assert_eq!(tables.session_count(), 0);
    assert!(tables.account_by_device(&hash(9001)).is_none());
    assert_eq!(
        tables.authenticate(&hash(10), &LIFETIMES, 1),
        Err(TokenRefused::Unknown)
    );
    tables.check_consistent();
}

#[test]
fn accounts_stop_at_the_bound() {
    let mut tables = Tables::default();
    for n in 0..3 {
        tables
            .create(
                Tables::new_account(account_id(n), "g".into(), None, None, None, 0),
                3,
            )
            .unwrap();
    }
    assert_eq!(
        tables.create(
            Tables::new_account(account_id(9), "g".into(), None, None, None, 0),
            3
        ),
        Err(AccountRefused::Full)
    );
}

#[derive(Clone, Debug)]
enum Step {
    Login(u32),
    Refresh(u32),
    Authenticate(u32),
    End(u32),
    Delete,
    Sweep,
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..40u32).prop_map(Step::Login),
        (0..400u32).prop_map(Step::Refresh),
        (0..400u32).prop_map(Step::Authenticate),
        (0..40u32).prop_map(Step::End),
        Just(Step::Delete),
        Just(Step::Sweep),
        (0..20_000u64).prop_map(Step::Wait),
    ]
}

proptest! {
    /// Whatever happens in whatever order, the indexes agree with the tables and the bounds
    /// hold.
    #[test]
    fn the_indexes_always_agree_with_the_tables(steps in proptest::collection::vec(step(), 1..80)) {
        let mut tables = tables_with_account(1);
        let mut now = 0;
        let mut next = 1_000u32;
        for step in steps {
            match step {
                Step::Login(n) => {
                    next += 1;
                    if tables.account(&account_id(1)).is_some() {
                        let tokens = NewTokens { session: session_id(next), access: hash(next * 10), refresh: hash(next * 10 + 1) };
                        let _ = tables.start_session(&account_id(1), tokens, &LIFETIMES, BOUNDS, now + u64::from(n));
                    }
                }
                Step::Refresh(n) => {
                    next += 1;
                    let _ = tables.refresh(&hash(n * 10 + 1), hash(next * 10), hash(next * 10 + 1), &LIFETIMES, now);
                }
                Step::Authenticate(n) => { let _ = tables.authenticate(&hash(n * 10), &LIFETIMES, now); }
                Step::End(n) => { tables.end_session(&session_id(n + 1_000)); }
                Step::Delete => { tables.delete(&account_id(1)); }
                Step::Sweep => { tables.sweep(&LIFETIMES, now); }
                Step::Wait(ms) => now += ms,
            }
            tables.check_consistent();
            prop_assert!(tables.sessions_of(&account_id(1)).len() <= 3);
        }
    }
}
