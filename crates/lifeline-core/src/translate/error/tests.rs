//! Error bodies both ways, for the statuses both APIs document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use super::*;
use crate::translate::testing::{bytes, fixture, parse};

fn body(case: &Value) -> Vec<u8> {
    if case["raw"] == true {
        case["body"].as_str().unwrap().as_bytes().to_vec()
    } else {
        bytes(&case["body"])
    }
}

fn status(case: &Value) -> u16 {
    u16::try_from(case["status"].as_u64().unwrap()).unwrap()
}

#[test]
fn anthropic_errors_take_openai_shape() {
    let cases = fixture("error/anthropic_to_openai.json");
    for case in cases.as_array().unwrap() {
        let out = parse(&to_openai(status(case), &body(case)));
        assert_eq!(out, case["expected"], "HTTP {}", case["status"]);
    }
}

#[test]
fn openai_errors_take_anthropic_shape() {
    let cases = fixture("error/openai_to_anthropic.json");
    for case in cases.as_array().unwrap() {
        let out = parse(&to_anthropic(status(case), &body(case)));
        assert_eq!(
            out, case["expected"],
            "HTTP {} {}",
            case["status"], case["about"]
        );
    }
}

#[test]
fn statuses_have_anthropic_error_types() {
    for (status, want) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "conflict_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(anthropic_error_type(status), want, "{status}");
    }
}

#[test]
fn long_unparsable_bodies_are_cut_at_a_character_boundary() {
    let long = "é".repeat(MAX_MESSAGE);
    let out = parse(&to_anthropic(502, long.as_bytes()));
    let message = out["error"]["message"].as_str().unwrap();
    assert!(
        message.len() <= MAX_MESSAGE && message.len() >= MAX_MESSAGE - 1,
        "{}",
        message.len()
    );
}
