//! One test per kind of tampering (tests/tamper.rs runs the same cases through the binary).
//!
//! The records are made up: line `k` of an intact chain has `seq` k-1, hashes to `h(k)` and
//! links to `h(k-1)`, where `h(0)` is the genesis hash (64 zeros).

use super::*;

fn h(n: u8) -> Hash {
    [n; 32]
}

/// Line `line` of an intact chain.
fn line(line: u8) -> Rec {
    Rec {
        line: u64::from(line),
        offset: u64::from(line) * 100,
        seq: u64::from(line) - 1,
        prev: h(line - 1),
        hash: h(line),
        bare: None,
    }
}

/// The record the next one must link to, not blamed, with no junk after it.
fn at(rec: Rec) -> Anchor {
    Anchor {
        rec,
        blamed: false,
        junk: 0,
    }
}

/// Line `n` with other bytes than the chain's (its hash changes, its fields do not).
fn changed(n: u8) -> Rec {
    Rec {
        hash: h(200 + n),
        ..line(n)
    }
}

/// Diagnoses `rec` after `anchor` and checks the verdict, the problem and its sentence.
fn check(
    anchor: Option<Anchor>,
    rec: Rec,
    ahead: &[Rec],
    expected: Diagnosis,
    problem: Option<(ProblemKind, u64)>,
    message: &str,
) {
    let d = diagnose(anchor.as_ref(), &rec, ahead);
    assert_eq!(d, expected);
    assert_eq!(d.problem().map(|(kind, at)| (kind, at.line)), problem);
    assert_eq!(d.to_string(), message);
}

// --- records that fit ------------------------------------------------------------------------

#[test]
fn a_record_that_links_to_the_anchor_fits() {
    let d = diagnose(Some(&at(line(3))), &line(4), &[line(5), line(6)]);
    assert_eq!(d, Diagnosis::Links);
    assert_eq!(d.problem(), None);
}

#[test]
fn a_first_record_with_seq_0_and_the_genesis_hash_fits() {
    let d = diagnose(None, &line(1), &[line(2)]);
    assert_eq!(d, Diagnosis::Links);
    assert_eq!(d.problem(), None);
}

#[test]
fn a_record_after_a_blamed_anchor_fits_by_its_seq_alone() {
    let anchor = Anchor {
        blamed: true,
        ..at(changed(3))
    };
    assert_eq!(
        diagnose(Some(&anchor), &line(4), &[line(5)]),
        Diagnosis::Links
    );
}

// --- changed lines ---------------------------------------------------------------------------

#[test]
fn changed_content_is_blamed_on_the_anchor_by_the_next_link() {
    // Line 3's bytes changed: line 4 still links to what line 3 was.
    check(
        Some(at(changed(3))),
        line(4),
        &[line(5)],
        Diagnosis::AnchorChanged {
            anchor: changed(3),
            rec: line(4),
            last: false,
        },
        Some((ProblemKind::HashMismatch, 3)),
        "line 3 was changed: its SHA-256 no longer matches the prev_hash of line 4",
    );
}

#[test]
fn a_broken_link_to_the_last_line_names_both_lines() {
    check(
        Some(at(changed(9))),
        line(10),
        &[],
        Diagnosis::AnchorChanged {
            anchor: changed(9),
            rec: line(10),
            last: true,
        },
        Some((ProblemKind::HashMismatch, 9)),
        "line 9 was changed, or the prev_hash of line 10 (the last line): they no longer link",
    );
}

#[test]
fn changed_seq_is_blamed_at_that_line() {
    let rec = Rec {
        seq: 7,
        ..changed(4)
    };
    check(
        Some(at(line(3))),
        rec,
        &[line(5)],
        Diagnosis::Replaced {
            rec,
            expected: 3,
            anchor: 3,
            next: 5,
            link_ok: true,
        },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 was changed or replaced: its seq reads 7, expected 3",
    );
}

#[test]
fn changed_prev_hash_is_blamed_at_that_line() {
    let rec = Rec {
        prev: h(77),
        ..changed(4)
    };
    check(
        Some(at(line(3))),
        rec,
        &[line(5)],
        Diagnosis::Replaced {
            rec,
            expected: 3,
            anchor: 3,
            next: 5,
            link_ok: false,
        },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 was changed or replaced: its prev_hash does not match line 3 (or line 3 was changed too)",
    );
}

#[test]
fn two_adjacent_changed_lines_are_blamed_at_the_second_naming_the_first() {
    // Lines 3 and 4 changed: the link 3 -> 4 and the link 4 -> 5 are both broken.
    check(
        Some(at(changed(3))),
        changed(4),
        &[line(5)],
        Diagnosis::Replaced {
            rec: changed(4),
            expected: 3,
            anchor: 3,
            next: 5,
            link_ok: false,
        },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 was changed or replaced: its prev_hash does not match line 3 (or line 3 was changed too)",
    );
}

#[test]
fn a_changed_line_whose_fields_still_fit_links_and_waits_for_the_next_link() {
    // Its seq and prev_hash fit: only the next record's link can show its bytes changed.
    let d = diagnose(Some(&at(line(3))), &changed(4), &[line(5)]);
    assert_eq!(d, Diagnosis::Links);
    assert_eq!(d.problem(), None);
}

#[test]
fn a_line_from_another_log_with_the_right_seq_is_blamed_as_replaced() {
    // Spliced: the same seq, another prev_hash and other bytes.
    let spliced = Rec {
        prev: h(150),
        hash: h(151),
        ..line(4)
    };
    check(
        Some(at(line(3))),
        spliced,
        &[line(5)],
        Diagnosis::Replaced {
            rec: spliced,
            expected: 3,
            anchor: 3,
            next: 5,
            link_ok: false,
        },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 was changed or replaced: its prev_hash does not match line 3 (or line 3 was changed too)",
    );
}

#[test]
fn a_record_moved_over_another_says_seq_and_link_are_both_wrong() {
    let moved = Rec { line: 4, ..line(9) };
    check(
        Some(at(line(3))),
        moved,
        &[line(5)],
        Diagnosis::Replaced {
            rec: moved,
            expected: 3,
            anchor: 3,
            next: 5,
            link_ok: false,
        },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 was changed or replaced: its seq reads 8, expected 3, and its prev_hash does not match line 3 (a record moved or copied here)",
    );
}

#[test]
fn a_replaced_line_that_ends_with_a_cr_says_so() {
    let rec = Rec {
        seq: 7,
        bare: Some(h(123)),
        ..changed(4)
    };
    check(
        Some(at(line(3))),
        rec,
        &[line(5)],
        Diagnosis::Replaced {
            rec,
            expected: 3,
            anchor: 3,
            next: 5,
            link_ok: true,
        },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 was changed or replaced (it ends with a CR): its seq reads 7, expected 3",
    );
}

#[test]
fn a_changed_anchor_that_ends_with_a_cr_says_so() {
    let anchor = Rec {
        bare: Some(h(124)),
        ..changed(3)
    };
    check(
        Some(at(anchor)),
        line(4),
        &[line(5)],
        Diagnosis::AnchorChanged {
            anchor,
            rec: line(4),
            last: false,
        },
        Some((ProblemKind::HashMismatch, 3)),
        "line 3 was changed (it ends with a CR): its SHA-256 no longer matches the prev_hash of line 4",
    );
}

// --- a CR before the LF ----------------------------------------------------------------------

#[test]
fn a_cr_added_to_an_intact_line_is_named_and_then_ignored() {
    // Without the CR, line 4 is what line 5 links to.
    let rec = Rec {
        hash: h(230),
        bare: Some(h(4)),
        ..line(4)
    };
    check(
        Some(at(line(3))),
        rec,
        &[line(5)],
        Diagnosis::CrAdded { rec, next: 5 },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 was changed: a CR was added before its LF (line 5 links to it without the CR)",
    );
    // The walk goes on with the record as if the CR were not there.
    assert_eq!(rec.without_cr(), line(4));
    assert_eq!(
        diagnose(Some(&at(line(3))), &rec.without_cr(), &[line(5)]),
        Diagnosis::Links
    );
}

#[test]
fn a_cr_on_the_first_line_is_found_before_the_genesis_rule() {
    let rec = Rec {
        hash: h(230),
        bare: Some(h(1)),
        ..line(1)
    };
    assert_eq!(
        diagnose(None, &rec, &[line(2)]),
        Diagnosis::CrAdded { rec, next: 2 }
    );
}

#[test]
fn a_cr_on_the_last_line_has_its_own_sentence() {
    let rec = Rec {
        bare: Some(h(10)),
        ..line(10)
    };
    let d = Diagnosis::LastLineCr { rec };
    assert_eq!(
        d.problem().map(|(k, at)| (k, at.line)),
        Some((ProblemKind::HashMismatch, 10))
    );
    assert_eq!(
        d.to_string(),
        "line 10 ends with a CR, which the writer never writes: it was changed (it is the last line, so no link shows what else changed)"
    );
}

// --- the first record ------------------------------------------------------------------------

#[test]
fn a_changed_genesis_prev_hash_is_bad_genesis() {
    let rec = Rec {
        prev: h(9),
        ..changed(1)
    };
    check(
        None,
        rec,
        &[line(2)],
        Diagnosis::GenesisPrevChanged { rec },
        Some((ProblemKind::BadGenesis, 1)),
        "line 1: the first record's prev_hash is not 64 zeros: it was changed",
    );
}

#[test]
fn a_changed_genesis_seq_is_bad_genesis() {
    let rec = Rec {
        seq: 3,
        ..changed(1)
    };
    check(
        None,
        rec,
        &[line(2)],
        Diagnosis::GenesisSeqChanged { rec },
        Some((ProblemKind::BadGenesis, 1)),
        "line 1: the first record has the genesis prev_hash but seq 3, not 0: its seq was changed",
    );
}

#[test]
fn deleted_first_lines_are_bad_genesis() {
    // Lines 1..=5 deleted: the log's first line is the old line 6.
    let rec = Rec { line: 1, ..line(6) };
    check(
        None,
        rec,
        &[Rec { line: 2, ..line(7) }],
        Diagnosis::StartsLate { rec },
        Some((ProblemKind::BadGenesis, 1)),
        "line 1: the log starts at seq 5, not 0: its first records were deleted, or this is not the log's first file",
    );
}

// --- deleted lines ---------------------------------------------------------------------------

#[test]
fn a_deleted_line_is_a_gap_at_the_line_after_it() {
    // Line 4 deleted: the old line 5 is now line 4.
    let rec = Rec { line: 4, ..line(5) };
    check(
        Some(at(line(3))),
        rec,
        &[Rec { line: 5, ..line(6) }],
        Diagnosis::Gap {
            rec,
            expected: 3,
            link_ok: false,
        },
        Some((ProblemKind::SeqGap, 4)),
        "1 record (seq 3) is missing before line 4, and its prev_hash does not link to the line before",
    );
}

#[test]
fn several_deleted_lines_are_one_gap() {
    let rec = Rec {
        line: 4,
        ..line(14)
    };
    check(
        Some(at(line(3))),
        rec,
        &[],
        Diagnosis::Gap {
            rec,
            expected: 3,
            link_ok: false,
        },
        Some((ProblemKind::SeqGap, 4)),
        "10 records (seq 3..12) are missing before line 4, and its prev_hash does not link to the line before",
    );
}

#[test]
fn a_gap_whose_link_holds_says_only_what_is_missing() {
    // Records taken out and the next one re-linked by hand: only the seq shows it.
    let rec = Rec {
        line: 4,
        prev: h(3),
        ..line(6)
    };
    check(
        Some(at(line(3))),
        rec,
        &[],
        Diagnosis::Gap {
            rec,
            expected: 3,
            link_ok: true,
        },
        Some((ProblemKind::SeqGap, 4)),
        "2 records (seq 3..4) are missing before line 4",
    );
}

// --- inserted lines --------------------------------------------------------------------------

#[test]
fn a_duplicated_line_is_a_copy_out_of_order() {
    // Line 3 repeated as line 4: line 5 (the old line 4) links past it to line 3.
    check(
        Some(at(line(3))),
        Rec { line: 4, ..line(3) },
        &[Rec { line: 5, ..line(4) }],
        Diagnosis::Inserted {
            rec: Rec { line: 4, ..line(3) },
            how: Insertion::Copy,
            next: 5,
            anchor: 3,
        },
        Some((ProblemKind::SeqOutOfOrder, 4)),
        "line 4 is a copy of line 3: it was inserted, line 5 links to line 3",
    );
}

#[test]
fn a_duplicated_last_line_is_out_of_order() {
    let copy = Rec {
        line: 11,
        ..line(10)
    };
    check(
        Some(at(line(10))),
        copy,
        &[],
        Diagnosis::OutOfOrder {
            rec: copy,
            expected: 10,
            anchor: 10,
            relinks: false,
        },
        Some((ProblemKind::SeqOutOfOrder, 11)),
        "line 11 has seq 9, but seq 10 was expected after line 10",
    );
}

#[test]
fn an_inserted_line_with_an_old_seq_is_out_of_order() {
    let from_elsewhere = Rec {
        line: 4,
        seq: 1,
        prev: h(160),
        hash: h(161),
        ..line(4)
    };
    check(
        Some(at(line(3))),
        from_elsewhere,
        &[Rec { line: 5, ..line(4) }],
        Diagnosis::Inserted {
            rec: from_elsewhere,
            how: Insertion::Behind,
            next: 5,
            anchor: 3,
        },
        Some((ProblemKind::SeqOutOfOrder, 4)),
        "line 4 (seq 1) does not belong here: it was inserted, line 5 links to line 3",
    );
}

#[test]
fn an_inserted_line_with_a_current_or_later_seq_is_a_hash_mismatch() {
    for seq in [3, 800] {
        let from_elsewhere = Rec {
            line: 4,
            seq,
            prev: h(160),
            hash: h(161),
            ..line(4)
        };
        check(
            Some(at(line(3))),
            from_elsewhere,
            &[Rec { line: 5, ..line(4) }],
            Diagnosis::Inserted {
                rec: from_elsewhere,
                how: Insertion::Foreign,
                next: 5,
                anchor: 3,
            },
            Some((ProblemKind::HashMismatch, 4)),
            &format!(
                "line 4 (seq {seq}) does not belong to the chain: it was inserted, line 5 links to line 3"
            ),
        );
    }
}

#[test]
fn a_forged_record_with_the_right_seq_and_prev_hash_is_blamed_at_it() {
    // A forgery of line 4 inserted before it: the genuine line 4 (now line 5) claims the same
    // place and line 6 links to the genuine one.
    let forged = changed(4);
    let genuine = Rec { line: 5, ..line(4) };
    let next = Rec { line: 6, ..line(5) };
    check(
        Some(at(line(3))),
        forged,
        &[genuine, next],
        Diagnosis::Forged {
            rec: forged,
            twin: 5,
            next: 6,
        },
        Some((ProblemKind::HashMismatch, 4)),
        "line 4 (seq 3) does not belong to the chain: it was inserted, line 5 has the same seq and prev_hash and line 6 links to line 5",
    );
}

#[test]
fn a_forged_first_record_is_blamed_at_it() {
    let forged = changed(1);
    let genuine = Rec { line: 2, ..line(1) };
    let next = Rec { line: 3, ..line(2) };
    assert_eq!(
        diagnose(None, &forged, &[genuine, next]),
        Diagnosis::Forged {
            rec: forged,
            twin: 2,
            next: 3,
        }
    );
}

#[test]
fn a_forgery_just_before_the_last_line_cannot_be_told_from_it() {
    // Nothing links to the genuine last line: the walk cannot see which is the forgery.
    let forged = changed(10);
    let genuine = Rec {
        line: 11,
        ..line(10)
    };
    assert_eq!(
        diagnose(Some(&at(line(9))), &forged, &[genuine]),
        Diagnosis::Links
    );
}

// --- reordered lines -------------------------------------------------------------------------

#[test]
fn swapped_lines_are_blamed_at_the_second() {
    // Lines 4 and 5 swapped: line 4 holds seq 4, line 5 holds seq 3.
    let second_first = Rec { line: 4, ..line(5) };
    let first_second = Rec { line: 5, ..line(4) };
    check(
        Some(at(line(3))),
        second_first,
        &[first_second, line(6)],
        Diagnosis::Swapped {
            rec: second_first,
            first: first_second,
        },
        Some((ProblemKind::SeqOutOfOrder, 5)),
        "lines 4 and 5 are swapped: seq 3 comes after seq 4",
    );
}

#[test]
fn a_record_moved_back_that_the_next_links_to_is_out_of_order_and_relinks() {
    let moved = Rec {
        line: 11,
        seq: 2,
        ..line(11)
    };
    check(
        Some(at(line(10))),
        moved,
        &[Rec {
            prev: moved.hash,
            ..line(12)
        }],
        Diagnosis::OutOfOrder {
            rec: moved,
            expected: 10,
            anchor: 10,
            relinks: true,
        },
        Some((ProblemKind::SeqOutOfOrder, 11)),
        "line 11 has seq 2, but seq 10 was expected after line 10",
    );
}

// --- lines that are not records --------------------------------------------------------------

#[test]
fn a_record_after_junk_that_replaced_records_is_not_blamed_again() {
    // Line 4 was replaced by a line that is not a record (reported as what it is).
    let anchor = Anchor {
        junk: 1,
        ..at(line(3))
    };
    let d = diagnose(Some(&anchor), &line(5), &[line(6)]);
    assert_eq!(d, Diagnosis::AfterJunk);
    assert_eq!(d.problem(), None);
    // More records missing than junk lines: a gap after all.
    let d = diagnose(Some(&anchor), &line(6), &[line(7)]);
    assert!(matches!(d, Diagnosis::Gap { .. }), "{d:?}");
}

#[test]
fn a_changed_line_followed_by_a_blank_line_is_still_blamed() {
    // Regression: line 3 changed, line 4 blank, line 5 (the old line 4) links to line 3.
    let anchor = Anchor {
        junk: 1,
        ..at(changed(3))
    };
    let rec = Rec { line: 5, ..line(4) };
    assert_eq!(
        diagnose(Some(&anchor), &rec, &[Rec { line: 6, ..line(5) }]),
        Diagnosis::AnchorChanged {
            anchor: changed(3),
            rec,
            last: false
        }
    );
}

// --- the edges of the seq range --------------------------------------------------------------

#[test]
fn seqs_at_the_top_of_their_range_do_not_overflow() {
    // A forged log whose records claim seqs near u64::MAX: every comparison wraps, as the
    // release build always did, instead of panicking.
    let top = |line: u64, seq: u64, prev: u8, hash: u8| Rec {
        line,
        offset: line * 100,
        seq,
        prev: h(prev),
        hash: h(hash),
        bare: None,
    };
    let anchor = at(top(3, u64::MAX - 1, 2, 3));
    let in_place = top(5, u64::MAX, 3, 4);
    let rec = top(4, 5, 4, 9);
    assert_eq!(
        diagnose(Some(&anchor), &rec, &[in_place]),
        Diagnosis::Inserted {
            rec,
            how: Insertion::Behind,
            next: 5,
            anchor: 3
        }
    );
    let wrapped = top(4, 0, 4, 9);
    assert_eq!(
        diagnose(Some(&anchor), &wrapped, &[in_place]),
        Diagnosis::Swapped {
            rec: wrapped,
            first: in_place
        }
    );
    // Nothing follows the largest seq: a record after it is a wrap (issue 9, item 11).
    let last = at(top(3, u64::MAX, 2, 3));
    let after = top(4, 0, 3, 4);
    assert_eq!(
        diagnose(Some(&last), &after, &[]),
        Diagnosis::Wrapped {
            rec: after,
            anchor: 3
        }
    );
}
