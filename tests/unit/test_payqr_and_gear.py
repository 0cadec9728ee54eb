"""Payment QR payloads (SPAYD, PAY by square, EPC, MNB HCT) and the nftables rules, without
I/O."""

from __future__ import annotations

from datetime import date

import pytest

from services.gear import nft
from services.runtime import payqr


def test_czech_account_to_iban() -> None:
    assert payqr.iban("19-2000145399/0800") == "CZ6508000000192000145399"
    assert payqr.iban("2001234561/2010") == "CZ1520100000002001234561"
    assert payqr.iban("SK35 1100 0000 0026 1234 5674") == "SK3511000000002612345674"
    with pytest.raises(ValueError, match="expected an IBAN"):
        payqr.iban("12/3")


def test_spayd_carries_account_amount_and_symbols() -> None:
    code = payqr.spayd(
        "2001234561/2010", 49900, "CZK", "1001", "2026000001", date(2026, 12, 15), "Fa *1", "Síť"
    )
    assert code == (
        "SPD*1.0*ACC:CZ1520100000002001234561*AM:499.00*CC:CZK*DT:20261215*MSG:FA  1*RN:SIT"
        "*X-VS:1001*X-SS:2026000001"
    )


def test_pay_by_square_matches_the_reference_vector_and_round_trips() -> None:
    # The example of the format's public implementations: 1 EUR to SK77..., 5 July 2020.
    code = payqr.pay_by_square("SK7700000000000000000000", 100, "EUR", None, None, date(2020, 7, 5))
    assert code == (
        "000440007S3VT0DFSETNDU5J8KF4EI1MT7B3BBH3P91D830QDBA6IRPF97451V4U11PHMI423IDK7VVU5P800"
    )
    fields = payqr.decode_pay_by_square(
        payqr.pay_by_square(
            "SK3511000000002612345674", 1990, "EUR", "1001", "2026000001", date(2026, 12, 15)
        )
    )
    assert fields[3:9] == ["19.90", "EUR", "20261215", "1001", "", "2026000001"]
    assert fields[12] == "SK3511000000002612345674"
    assert payqr.svg("SPD*1.0").startswith("<svg")


# Published vectors of the independent pay-by-square implementation (PyPI "pay-by-square"):
# 1 EUR to SK7700000000000000000000 on 2020-07-05 with, in turn, a BIC; VS 11, KS 22,
# SS 33; a beneficiary; and every field including a note and the beneficiary's address.
PBS_VECTORS = [
    (
        {"bic": "FIOZSKBAXXX"},
        "0004Q000DS03UHKLF59M2IK7FUCM3SBUK5FM62CCKLR4QOKAJSBPPL4ND4R66LSI"
        "1K92GURM0FH5E3DASNBTNAKASV94PB5VVU1BRO00",
    ),
    (
        {"vs": "11", "ks": "22", "ss": "33"},
        "0004G000EIUCQ7TO82O7GRAEMT06773UPLKOEC76BV3NBBNP7HPVSSJHUNVFBD7G"
        "6DAAMTDL4B8ND4D06QCNS7PHMPBVVVROGU000",
    ),
    (
        {"vs": "11", "ks": "22", "ss": "33", "beneficiary": "Foo"},
        "0004M0006MISSBD0SBV1135OEDE05KA7IM2GBI0U0M5LHD5LIEP7D9CJO6T8GQDF"
        "UKCL7TOEGN8TDOVAJ2GL85IOEA8OV3O1AQOFVU3JKS00",
    ),
    (
        {
            "vs": "11",
            "ks": "22",
            "ss": "33",
            "beneficiary": "Foo",
            "bic": "FIOZSKBAXXX",
            "message": "money",
            "beneficiary_address": ("address 1", "address 2"),
        },
        "0006Q0006GO7VIPNP2PPLDV1MO04PTB6C4OSM4KU3JKSDNJLJ0GBAT9GTI9DD7MF"
        "QKGMLI4RD7996S1K78MKT8S0F46HK5TF6A6GP881BBMM66JVFMBBSM9KQRM2TN2V"
        "RABUV7KFD22BFFIVVTFKO000",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), PBS_VECTORS)
def test_pay_by_square_matches_the_published_vectors(
    fields: dict[str, object], expected: str
) -> None:
    args = {"vs": None, "ss": None, **fields}
    code = payqr.pay_by_square(
        "SK7700000000000000000000",
        100,
        "EUR",
        due=date(2020, 7, 5),
        **args,
    )
    assert code == expected


def test_epc_qr_carries_the_symbols_in_the_remittance_and_ends_at_the_last_element() -> None:
    assert payqr.epc("AT611904300234573201", 12_345, "Síť s.r.o.", "/VS1001/SS2026000001") == (
        "BCD\n002\n1\nSCT\n\nSíť s.r.o.\nAT611904300234573201\nEUR123.45\n\n\n/VS1001/SS2026000001"
    )
    assert payqr.epc("AT611904300234573201", 100, "X", bic="BKAUATWW").endswith("EUR1.00")
    with pytest.raises(ValueError, match="EPC QR: amount 0"):
        payqr.epc("AT611904300234573201", 0, "X")


def test_mnb_hct_has_seventeen_fields_and_whole_forints() -> None:
    from datetime import datetime, timedelta, timezone

    summer = timezone(timedelta(hours=2))
    code = payqr.mnb_hct(
        "HU42117730161111101800000000",
        690_000,
        "Hálózat Kft.",
        "OTPVHUHB",
        datetime(2027, 7, 1, 23, 59, 59, tzinfo=summer),
        "2027000001",
        "2027000001",
        "1001",
    )
    assert code.split("\n") == [
        "HCT",
        "001",
        "1",
        "OTPVHUHBXXX",
        "Hálózat Kft.",
        "HU42117730161111101800000000",
        "HUF6900",
        "20270701235959+2",
        "",
        "2027000001",
        "",
        "",
        "2027000001",
        "1001",
        "",
        "",
        "",
        "",
    ]
    with pytest.raises(ValueError, match="whole number of forints"):
        payqr.mnb_hct(
            "HU42117730161111101800000000",
            690_050,
            "X",
            "OTPVHUHB",
            datetime(2027, 7, 1, tzinfo=summer),
        )
    with pytest.raises(ValueError, match="not a Hungarian IBAN"):
        payqr.mnb_hct(
            "SK7700000000000000000000", 100, "X", "OTPVHUHB", datetime(2027, 7, 1, tzinfo=summer)
        )


def test_for_payment_picks_the_code_by_currency_and_account() -> None:
    due = date(2027, 1, 16)
    pick = payqr.for_payment
    assert pick("19-2000145399/0800", "CZK", 100, "1", "2", due, "A")[0] == "spayd"
    assert pick("SK7700000000000000000000", "EUR", 100, "1", "2", due, "A")[0] == "pay_by_square"
    epc = pick("AT611904300234573201", "EUR", 100, "1", "2", due, "A")
    assert epc is not None and epc[0] == "epc" and epc[1].endswith("/VS1/SS2")
    assert pick("AT611904300234573201", "USD", 100, "1", "2", due, "A") is None
    with pytest.raises(ValueError, match="BIC is required"):
        pick("HU42117730161111101800000000", "HUF", 100, "1", "2", due, "A")


CFG = nft.GearConfig(
    notice4=nft.Endpoint.parse("192.0.2.1:8080", "notice"),
    notice6=nft.Endpoint.parse("[2001:db8::1]:8080", "notice6"),
    garden=("198.51.100.30", "2001:db8:ba::/48"),
    restrict_rate="2 mbytes/second",
)


def entry(state: str, version: int, *addresses: str) -> nft.Entry:
    v4 = [a for a in addresses if ":" not in a and "/" not in a]
    p4 = [a for a in addresses if ":" not in a and "/" in a]
    v6 = [a for a in addresses if ":" in a]
    return nft.Entry.of(
        {
            "contract": "1001",
            "state": state,
            "version": version,
            "subscribers": {"ipv4": v4, "ipv4_prefixes": p4, "ipv6_prefixes": v6},
        }
    )


def test_ruleset_has_a_set_per_state_and_family_and_the_rules() -> None:
    text = nft.ruleset(CFG, [entry("suspended", 3, "100.64.0.7", "2001:db8:7::/56")])
    assert text.startswith("table inet billing {}\ndelete table inet billing\n")
    assert "set suspended4 { type ipv4_addr; flags interval; elements = { 100.64.0.7 } }" in text
    assert (
        "set suspended6 { type ipv6_addr; flags interval; elements = { 2001:db8:7::/56 } }" in text
    )
    assert "elements = { 192.0.2.1, 198.51.100.30 }" in text  # garden includes the notice server
    assert "ip saddr @notice4 ip daddr != @garden4 tcp dport 80 dnat ip to 192.0.2.1:8080" in text
    assert (
        "ip6 saddr @suspended6 ip6 daddr != @garden6 tcp dport 80 dnat ip6 to [2001:db8::1]:8080"
        in text
    )
    assert "ip saddr @suspended4 reject with icmp type admin-prohibited" in text
    assert "limit rate over 2 mbytes/second" in text


def test_changes_delete_before_add_and_skip_active() -> None:
    old = entry("notice", 1, "100.64.0.7", "10.9.0.0/16")
    new = entry("suspended", 2, "100.64.0.7", "10.9.0.0/16")
    assert nft.changes(CFG, [(old, new)]) == (
        "delete element inet billing notice4 { 10.9.0.0/16, 100.64.0.7 }\n"
        "add element inet billing suspended4 { 10.9.0.0/16, 100.64.0.7 }\n"
    )
    assert nft.changes(CFG, [(None, entry("active", 1, "100.64.0.7"))]) == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"restrict_rate": "fast"}, "restrict rate"),
        ({"garden": ("bank.example",)}, "walled garden"),
        ({"table": "Billing Table"}, "table"),
    ],
)
def test_bad_gear_configuration_names_what_is_wrong(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(nft.GearConfigError, match=message):
        nft.GearConfig(**kwargs)
    with pytest.raises(nft.GearConfigError, match="ADDRESS:PORT"):
        nft.Endpoint.parse("192.0.2.1", "notice")


def test_requests_fold_in_order_each_change_a_version() -> None:
    from services.provisioning.domain import Access, apply_requests

    current = {"1": Access("active", "contract created", 0), "2": Access("notice", "n", 4)}
    final, changes = apply_requests(
        current,
        [("1", "notice"), ("1", "notice"), ("9", "suspend"), ("2", "acknowledged"),
         ("1", "suspend"), ("1", "restore"), ("2", "restore")],
    )  # fmt: skip
    assert changes == [
        ("1", Access("notice", "payment notice", 1)),
        ("2", Access("active", "notice acknowledged", 5)),
        ("1", Access("suspended", "unpaid after notice", 2)),
        ("1", Access("active", "payment received", 3)),
    ]
    assert final == {"1": changes[3][1], "2": changes[1][1]}
    assert current["1"].version == 0  # the caller's view is not changed
