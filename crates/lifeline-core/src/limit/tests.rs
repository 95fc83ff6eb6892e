use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::config::Priority;

fn tenant(id: &str, rpm: Option<u64>, tpm: Option<u64>) -> Arc<Tenant> {
    Arc::new(Tenant {
        id: Arc::from(id),
        name: Arc::from(id),
        priority: Priority::Standard,
        rpm,
        tpm,
        models: Box::new([]),
    })
}

#[tokio::test(start_paused = true)]
async fn rpm_allows_a_minutes_worth_then_refuses_until_it_refills() {
    let local = Local::new(Arc::new(Metrics::new()));
    let t = tenant("7", Some(2), None);
    let first = local.admit(Some(&t), 10).ok().and_then(|g| g.requests);
    assert_eq!(first.map(|q| q.remaining), Some(1));
    assert!(local.admit(Some(&t), 10).is_ok());
    let r = local.admit(Some(&t), 10).err().unwrap();
    assert_eq!(r.kind, Kind::Requests);
    assert_eq!(r.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(r.requests.map(|q| q.remaining), Some(0));
    // Another key is untouched.
    assert!(local.admit(Some(&tenant("8", Some(2), None)), 1).is_ok());
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(local.admit(Some(&t), 10).is_err());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(local.admit(Some(&t), 10).is_ok());
}

#[tokio::test(start_paused = true)]
async fn tokens_are_charged_then_settled_with_real_usage() {
    let local = Local::new(Arc::new(Metrics::new()));
    let t = tenant("t", Some(100), Some(1000));
    let g = local.admit(Some(&t), 800).ok().unwrap();
    assert_eq!(g.tokens.map(|q| q.remaining), Some(200));
    // Not enough left for another 800: refused, and its request unit is
    // given back.
    let r = local.admit(Some(&t), 800).err().unwrap();
    assert_eq!(r.kind, Kind::Tokens);
    assert_eq!(r.used, 800);
    assert_eq!(r.requests.map(|q| q.remaining), Some(99));
    assert_eq!(
        r.retry_after.map(|d| d.as_millis()),
        Some(36_000),
        "600 tokens refill in 36 s at 1000/min"
    );
    // It really used 50: 950 are free again.
    g.meter.as_ref().unwrap().settle(800, 50);
    let g2 = local.admit(Some(&t), 800).ok().unwrap();
    assert_eq!(g2.tokens.map(|q| q.remaining), Some(150));
    // Using more than estimated is debited: the key then owes.
    g2.meter.as_ref().unwrap().settle(800, 1500);
    let r = local.admit(Some(&t), 1).err().unwrap();
    assert!(r.used > 1000, "{r:?}");
    // Larger than the whole budget: never fits.
    let r = local.admit(Some(&t), 1001).err().unwrap();
    assert_eq!(r.retry_after, None);
}

#[tokio::test(start_paused = true)]
async fn idle_full_budgets_are_forgotten() {
    let local = Local::new(Arc::new(Metrics::new()));
    for i in 0..50 {
        assert!(local
            .admit(Some(&tenant(&i.to_string(), Some(60), None)), 0)
            .is_ok());
    }
    assert_eq!(local.len(), 50);
    tokio::time::advance(Duration::from_secs(30)).await;
    let slow = tenant("slow", Some(1), None);
    assert!(local.admit(Some(&slow), 0).is_ok());
    // The first admission after the sweep interval drops the full ones;
    // a budget that is not full yet is kept.
    tokio::time::advance(Duration::from_secs(31)).await;
    let g = local.admit(Some(&tenant("x", None, None)), 0).ok().unwrap();
    assert_eq!(local.len(), 2);
    let r = local.admit(Some(&slow), 0).err().unwrap();
    assert_eq!(r.retry_after, Some(Duration::from_secs(29)));
    // An entry a request in flight still holds is kept too.
    tokio::time::advance(Duration::from_secs(120)).await;
    assert!(local.admit(None, 0).is_ok());
    let _ = local.admit(Some(&tenant("y", None, None)), 0);
    assert_eq!(local.len(), 2, "x (held) and y");
    drop(g);
}

#[test]
fn estimates_count_prompt_bytes_and_the_output_allowance() {
    let inspected = |max_output, choices| Inspected {
        model: "m".into(),
        model_span: 0..1,
        stream: false,
        choices,
        max_output,
        include_usage: false,
    };
    let e = estimate(Endpoint::ChatCompletions, &inspected(Some(100), 2), 401);
    assert_eq!((e.prompt, e.output, e.explicit), (101, 200, true));
    let e = estimate(Endpoint::Responses, &inspected(None, 1), 8);
    assert_eq!(
        (e.prompt, e.output, e.explicit),
        (2, DEFAULT_OUTPUT_TOKENS, false)
    );
    let e = estimate(Endpoint::Embeddings, &inspected(Some(100), 1), 40);
    assert_eq!((e.prompt, e.output), (10, 0));
}

#[test]
fn resets_are_written_as_openai_writes_them() {
    let f = |ms| reset_format(Duration::from_millis(ms));
    assert_eq!(f(0), "0s");
    assert_eq!(f(20), "20ms");
    assert_eq!(f(1000), "1s");
    assert_eq!(f(1500), "1.5s");
    assert_eq!(f(8640), "8.64s");
    assert_eq!(f(360_000), "6m0s");
    assert_eq!(f(3_723_004), "1h2m3.004s");
    assert_eq!(reset_format(Duration::from_micros(1500)), "1ms");
}

#[test]
fn refusals_have_openai_shape_and_headers() {
    let t = tenant("app", Some(3), None);
    let r = Refusal {
        kind: Kind::Requests,
        retry_after: Some(Duration::from_millis(19_500)),
        used: 3,
        requested: 1,
        requests: Some(crate::gcra::Quota {
            limit: 3,
            remaining: 0,
            reset: Duration::from_secs(60),
        }),
        tokens: None,
    };
    let e = refusal_error(&t, &r);
    assert_eq!(e.status.as_u16(), 429);
    let v: serde_json::Value = serde_json::from_str(&e.body_json()).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "requests");
    assert_eq!(
        v["error"]["message"],
        "Rate limit reached for key `app` on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 19.5s."
    );
    assert_eq!(e.into_response().headers()["retry-after"], "20");
    let mut h = HeaderMap::new();
    headers(&mut h, r.requests, None);
    assert_eq!(h[&LIMIT_REQUESTS], "3");
    assert_eq!(h[&REMAINING_REQUESTS], "0");
    assert_eq!(h[&RESET_REQUESTS], "1m0s");
    assert!(!h.contains_key(&LIMIT_TOKENS));
}

#[tokio::test(start_paused = true)]
async fn a_request_refused_after_its_grant_gets_its_request_unit_back() {
    let local = Local::new(Arc::new(Metrics::new()));
    let t = tenant("shed", Some(2), Some(1000));
    let mut g = local.admit(Some(&t), 100).ok().unwrap();
    assert_eq!(g.requests.map(|q| q.remaining), Some(1));
    // Refused by global admission: the unit comes back (once).
    g.refund_request();
    assert_eq!(g.requests.map(|q| q.remaining), Some(2));
    g.refund_request();
    // The key still has its whole minute: two requests, then a refusal.
    assert!(local.admit(Some(&t), 1).is_ok());
    let last = local.admit(Some(&t), 1).ok().unwrap();
    assert_eq!(last.requests.map(|q| q.remaining), Some(0));
    assert_eq!(
        local.admit(Some(&t), 1).err().map(|r| r.kind),
        Some(Kind::Requests)
    );
    // A key without an rpm has nothing to give back.
    let mut free = local
        .admit(Some(&tenant("free", None, None)), 1)
        .ok()
        .unwrap();
    free.refund_request();
    assert!(free.requests.is_none());
}
