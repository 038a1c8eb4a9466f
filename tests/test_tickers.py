"""aggregator.text.tickers: instrument mentions, as tables of text -> expected tickers."""

from __future__ import annotations

import random

import pytest

from aggregator.text import extract_tickers

# (text, expected) pairs; the text is passed as the body with an empty title.
CASHTAGS = [
    ("Traders piled into $AAPL after the launch.", ("AAPL",)),
    ("$BRK.B slipped while $BRK.A held.", ("BRK.A", "BRK.B")),
    ("Shares of $F and $GOOGL rose; $NVDA's run continued.", ("F", "GOOGL", "NVDA")),
    ("$TSLA.", ("TSLA",)),
    ("The deal is worth $5 billion.", ()),
    ("It raised $1.2bn and $300m in two rounds.", ()),
    ("Tallis froze US$38 million; A$5m and HK$2bn were also frozen.", ()),
    ("Australian style: $US5 million, or $US 38m, and $A 2bn.", ()),
    ("Revenue ($M) and net debt ($B) are in the table.", ()),
    ("A fine of $$AAPL is nonsense, as is x$AAPL.", ()),
    ("Lower-case $tsla is chat, not a cashtag.", ()),
    ("A seven-letter $ABCDEFG is too long.", ()),
    ("See $AAPL.com for details.", ()),
]

EXCHANGES = [
    ("WD-40 Co (NASDAQ:WDFC) raised its dividend.", ("WDFC",)),
    ("Jabil (NYSE: JBL) beat estimates.", ("JBL",)),
    ("Jabil, NYSE:JBL, beat estimates.", ("JBL",)),
    ("Apple, Nasdaq: AAPL, unveiled a phone.", ("AAPL",)),
    ("Barclays (LSE: BARC) cut costs.", ("BARC",)),
    ("Shopify (TSX:SHOP) rallied.", ("SHOP",)),
    ("Tencent (OTC: TCEHY) and its ADR.", ("TCEHY",)),
    ("The SPDR fund (NYSEARCA:SPY) saw inflows.", ("SPY",)),
    ("BHP (ASX:BHP) lifted output.", ("BHP",)),
    ("Tencent (HKEX: 0700) bought back shares.", ("0700",)),
    ("Tencent (HKEX: 700) and (SEHK:00700) are one code.", ("0700",)),
    ("Toyota (TSE: 7203) raised guidance.", ("7203",)),
    ("Berkshire (NYSE: BRK.A, BRK.B) reports Saturday.", ("BRK.A", "BRK.B")),
    ("Alphabet (nasdaq: GOOGL) and (NYSE American: UAMY).", ("GOOGL", "UAMY")),
    ("Listed on (Euronext Paris: MC) and (XETRA: SAP).", ("MC", "SAP")),
    ("NYSE: IPO volumes fell to a decade low.", ()),
    ("Nasdaq: 16,000 is the level to watch.", ()),
    ("NYSE: 9:30 a.m. open, Nasdaq: -0.4%.", ()),
    ("Nasdaq: the index fell.", ()),
    ("NYSE: 0700 is not a New York code.", ()),
    ("Aim: grow revenue; She: A manager.", ()),
]

REUTERS = [
    ("Apple Inc <AAPL.O> rose.", ("AAPL",)),
    ("CSRA <CSRA.S> and Bank of America <BAC.N>.", ("BAC", "CSRA")),
    ("International Business Machines Corp <IBM> said.", ("IBM",)),
    ("Berkshire <BRKa.N> is the A share.", ("BRK.A",)),
    ("Tencent <0700.HK> and Toyota <7203.T>.", ("0700", "7203")),
    ("Escaped text: General Motors Corp &lt;GM> said.", ("GM",)),
    ("The euro <EUR=> and the yen <JPY=> moved.", ("EUR/USD", "USD/JPY")),
    ("Cross <EURJPY=> rose.", ("EUR/JPY",)),
    ("Footnote <1> and <Ford Motor Co> are not codes.", ()),
    ("Markup <B>bold</B> and <TD>cell</TD> are not codes.", ()),
]

FX = [
    ("EUR/USD holds below 1.1200.", ("EUR/USD",)),
    ("Gold Price Forecast: XAU/USD pauses.", ("XAU/USD",)),
    ("usd/jpy slipped as Tokyo warned.", ("USD/JPY",)),
    ("GBP / USD and AUD/NZD crosses.", ("AUD/NZD", "GBP/USD")),
    ("EURUSD fell while USDJPY rose.", ("EUR/USD", "USD/JPY")),
    ("The XAG/XAU ratio widened.", ("XAG/XAU",)),
    ("Read more at https://fx.example/eur/usd-forecast", ()),
    ("Use and/or the ABC/DEF ratio.", ()),
    ("Eurusd in lower case has no slash.", ()),
    ("USD/USD is not a pair.", ()),
    ("A 24/7 market; 1/2 a point.", ()),
]

CRYPTO = [
    ("Bitcoin (BTC) rose 3%.", ("BTC",)),
    ("BTC (Bitcoin) rose 3%.", ("BTC",)),
    ("Ether (ETH) and Solana (SOL) fell.", ("ETH", "SOL")),
    ("XRP jumped after the ruling.", ("XRP",)),
    ("bitcoin rose 3% on Monday.", ("BTC",)),
    ("BITCOIN SURGES PAST RECORD", ("BTC",)),
    ("Ether staking exit queue stretches to 19 days.", ("ETH",)),
    ("Cardano and Polkadot lagged Chainlink.", ("ADA", "DOT", "LINK")),
    ("Dogecoin, Litecoin and Toncoin rose.", ("DOGE", "LTC", "TON")),
    ("Shiba Inu and USD Coin supply grew.", ("SHIB", "USDC")),
    ("Tether minted more; Tron fees fell.", ("TRX", "USDT")),
    ("Bitcoin Cash forked, not bitcoin itself.", ("BCH", "BTC")),
    ("Bitcoin Cash forked.", ("BCH",)),
    ("Ethereum Classic rallied.", ("ETC",)),
    ("Polygon (MATIC) rebranded to POL.", ("MATIC", "POL")),
    ("The Polygon network upgraded.", ("POL",)),
    ("The Avalanche blockchain and AVAX rose.", ("AVAX",)),
    ("Solana's SOL token slid.", ("SOL",)),
    ("SOL/USDT broke resistance.", ("SOL",)),
    ("Bitcoins held by miners fell.", ("BTC",)),
    ("LINK DOT SOL TON ADA all alone.", ()),
    ("Here is a link to the report.", ()),
    ("A dot plot from the Fed.", ()),
    ("An avalanche of sell orders hit stocks.", ()),
    ("Optimism grew that the Fed would cut.", ()),
    ("Optimism about the token sale faded.", ()),
    ("Optimism's OP Mainnet and ADA-USD.", ("ADA", "OP")),
    ("The Cosmos ecosystem and Stellar network grew.", ("ATOM", "XLM")),
    ("DOGE cuts federal jobs.", ()),
    ("Researchers at ETH Zurich found a flaw.", ()),
    ("Prices were near record highs.", ()),
    ("They tether the peg to the dollar.", ()),
    ("A polygon has many sides; stellar results.", ()),
    ("BTC 96,880 +0.7% | ETH 3,274 -0.9% | SOL 204.10 +2.3%", ("BTC", "ETH")),
]

FALSE_POSITIVES = [
    ("The CEO said US GDP grew; the SEC and FOMC met.", ()),
    ("NYSE and NASDAQ volumes; an ETF from the USA.", ()),
    ("UPDATE 1-ECB holds rates as IMF warns", ()),
    ("Revenue rose 12% to 4.5 billion euros.", ()),
    ("Q3 EPS $1.20 vs $1.05 estimate; revenue $2.4B vs $2.3B", ()),
    ("Ardent Robotics (ARDR) reported results.", ()),
    ("", ()),
]

MIXED = [
    (
        "Apple <AAPL.O> and $MSFT rose as EUR/USD fell and bitcoin (BTC) slid; Jabil "
        "(NYSE: JBL) gained. The CEO said GDP was fine.",
        ("AAPL", "BTC", "EUR/USD", "JBL", "MSFT"),
    ),
    ("$AAPL, Nasdaq: AAPL and <AAPL.O> are one ticker.", ("AAPL",)),
    (
        "Full-width \uff04\uff21\uff21\uff30\uff2c and \uff25\uff35\uff32\uff0f\uff35\uff33\uff24.",
        ("AAPL", "EUR/USD"),
    ),
    ("Fraction slash EUR\u2044USD and division slash GBP\u2215JPY.", ("EUR/USD", "GBP/JPY")),
    ("Non-breaking (NYSE:\u00a0JBL) and \u0130stanbul bitcoin.", ("BTC", "JBL")),
]

CASES = CASHTAGS + EXCHANGES + REUTERS + FX + CRYPTO + FALSE_POSITIVES + MIXED


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_extract(text: str, expected: tuple[str, ...]) -> None:
    assert extract_tickers("", text) == expected


def test_enough_cases() -> None:
    assert len(CASES) >= 60


def test_title_and_text_both_count() -> None:
    assert extract_tickers("EUR/USD slips", "Bitcoin rose.") == ("BTC", "EUR/USD")
    assert extract_tickers("Apple <AAPL.O> rises", "") == ("AAPL",)


def test_distinct_and_sorted() -> None:
    result = extract_tickers("$ZZZ $AAA", "$ZZZ again, $MMM and EUR/USD, eur/usd, EURUSD.")
    assert result == ("AAA", "EUR/USD", "MMM", "ZZZ")


def test_html_tags_are_codes_without_closing_tags() -> None:
    # Reuters-21578 writes single-letter symbols: <C> is Citicorp, <F> Ford.
    assert extract_tickers("", "Citicorp <C> and Ford <F> said.") == ("C", "F")
    assert extract_tickers("", "<p>Ford <F> said.</p>") == ("F",)
    assert extract_tickers("", "<P>Hello</P> <B>x</B>") == ()


def test_name_vouches_only_nearby() -> None:
    far = "Solana fell. " + "Nothing more to add here. " * 20 + "SOL is also Spanish for sun."
    assert extract_tickers("", far) == ("SOL",)  # from the name, not the far symbol
    assert extract_tickers("", "Polygon network news. " + "x " * 100 + "POL") == ("POL",)
    assert extract_tickers("", "Avalanche " + "x " * 100 + "AVAX") == ("AVAX",)


NASTY = [
    "\x00\x01\x02\ud800\udfff\ufffd",
    "\u202e$AAPL\u202c EUR/\u200bUSD",
    "\U0001f680 $\U0001f680 <\U0001f680.O> NYSE:\U0001f680",
    "\u0130\u0130\u0130 bitcoin \u00df\u00df ether",
    "((((((((((((((((((((((((((((((((((((((((",
    "<" * 5000 + ">" * 5000,
    "$" * 10000 + "A",
    ":" * 10000,
    "/" * 10000,
    "NYSE: " * 3000,
    "(NYSE: A, " + "B, " * 3000,
    "&lt;" * 3000,
    "\r\n\t\v\f" * 1000,
    "\u0301" * 1000 + "Bitcoin",
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_never_raises_on_nasty_text(text: str) -> None:
    result = extract_tickers(text, text)
    assert isinstance(result, tuple)
    assert all(isinstance(t, str) and t for t in result)


@pytest.mark.parametrize("value", [None, 42, b"$AAPL", ["$AAPL"], object()])
def test_never_raises_on_non_strings(value: object) -> None:
    assert extract_tickers(value, value) == ()  # type: ignore[arg-type]
    assert extract_tickers(value, "$AAPL") == ("AAPL",)  # type: ignore[arg-type]


def test_never_raises_on_huge_text() -> None:
    block = (
        "Apple <AAPL.O> $MSFT (NYSE: JBL) EUR/USD bitcoin Solana (SOL) SOL Avalanche "
        "\u201cquoted\u201d CEO GDP $5bn US$38 "
    )
    assert extract_tickers("", block * 20000) == (
        "AAPL",
        "BTC",
        "EUR/USD",
        "JBL",
        "MSFT",
        "SOL",
    )


def test_never_raises_on_random_text() -> None:
    pieces = "NYSE Nasdaq HKEX &lt; bitcoin Solana SOL EUR USD \u0130 \ud800 \uff04 \u2044".split()
    alphabet = [*"$:/<>()&;.,-= \n\t0123456789AEUSDJPYBTCNOlkx", *pieces]
    rng = random.Random(7)
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        result = extract_tickers(text[:20], text)
        assert result == tuple(sorted(set(result)))
