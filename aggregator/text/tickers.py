"""Instrument mentions in a news item: stock symbols, FX pairs and crypto coins.

Standard library only and pure, so any stage may call it; it never raises on
odd input because it runs on untrusted feed content.

A capitalised word is taken as a symbol only in a context that says it is one,
because financial prose is full of capitals that are not (CEO, GDP, the SEC,
FOMC, ETF, a US$38 million fine):

- a cashtag: ``$AAPL``, ``$BRK.B``, but never money (``$5``, ``$1.2bn``, ``US$38``,
  ``$US5``, a ``($M)`` column header);
- an exchange prefix: ``(NASDAQ:WDFC)``, ``NYSE: JBL``, ``(HKEX: 0700)``,
  ``(NYSE: BRK.A, BRK.B)``; the exchange may be written in any case;
- a Reuters instrument code: ``<AAPL.O>`` and ``<IBM>`` give the root symbol,
  ``<BRKa.N>`` gives ``BRK.A``, ``<EUR=>`` gives ``EUR/USD``;
- an FX pair of two known currency (or metal) codes: ``EUR/USD``, ``usd/jpy``, and
  ``EURUSD`` when written in capitals with a major currency on one side;
- a crypto coin named in words (``bitcoin rose`` counts as BTC), or a coin symbol
  that cannot mean anything else (BTC, ETH, XRP, USDT...). A symbol that is also
  a word or an agency (SOL, DOT, LINK, TON, ADA, DOGE) counts only near its coin's
  name, as in ``Solana (SOL)``, or quoted as a pair (``SOL/USDT``). Coin names that
  are English words (Avalanche, Polygon, Stellar, Cosmos) count only when
  capitalised and followed by a crypto word or near the coin's symbol.

Symbols are returned as written (upper-case), FX pairs as ``"EUR/USD"`` and coins
by their ticker (``"BTC"``). A name together with its symbol in brackets gives the
symbol as written there (``Polygon (MATIC)`` is MATIC, not POL).

Not recognised on purpose: a bare bracketed symbol after a company name
(``Ardent Robotics (ARDR)``), which looks exactly like an acronym being defined
(``European Central Bank (ECB)``); Bloomberg codes (``AAPL US Equity``); bare
index or futures codes.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable

from aggregator.text.tokens import word_set

__all__ = ["extract_tickers"]

# -- FX ----------------------------------------------------------------------------

_METALS = frozenset("XAU XAG XPT XPD".split())
_CURRENCIES = (
    frozenset(
        "USD EUR JPY GBP CHF AUD NZD CAD CNY CNH HKD SGD SEK NOK DKK MXN ZAR TRY INR KRW BRL "
        "PLN CZK HUF RON RUB ILS THB TWD IDR MYR PHP CLP COP PEN ARS SAR AED KWD QAR EGP NGN "
        "KES VND PKR BGN ISK KZT UAH".split()
    )
    | _METALS
)
# A pair written without its slash needs one of these on a side.
_MAJORS = frozenset("USD EUR JPY GBP CHF AUD NZD CAD XAU XAG".split())
# Quoted as units of USD per one of them (EUR/USD); the rest as USD/<code>.
_USD_QUOTED = frozenset("EUR GBP AUD NZD XAU XAG XPT XPD".split())

# Not preceded by a letter, digit or "/" (so not a URL path such as /eur/usd-forecast).
# Tried at each slash rather than scanned over the text, which is much faster.
_FX_SLASH = re.compile(r"(?<![A-Za-z0-9/])([A-Za-z]{3})[ ]?/[ ]?([A-Za-z]{3})(?![A-Za-z0-9])")

# -- cashtags ------------------------------------------------------------------------

# The "$" comes first so that the scan can jump from dollar sign to dollar sign.
_CASHTAG = re.compile(r"\$(?<![\w$]\$)([A-Z]{1,6}(?:\.[A-Z])?)(?![\w$]|\.[A-Za-z0-9])")
# Money written with a dollar sign, never a cashtag.
_CASH_NEVER = frozenset(
    "US USD AU AUD CA CAD NZ NZD HK HKD SG SGD NT MX MXN MM MN MLN BN BLN TN TRN MIO MRD".split()
)
# Units in a table header ("Revenue ($M)") and one-letter country prefixes ("$A5m").
_CASH_UNITS = frozenset("A B C K M S T R".split())
_DIGIT_AFTER = re.compile(r"\s?\d")

# -- exchange prefixes ---------------------------------------------------------------

# Written in any case ("Nasdaq: AAPL"); names of two words are matched with one space.
_EXCHANGES = frozenset(
    "NASDAQ NASDAQGS NASDAQGM NASDAQCM NYSE NYSEARCA NYSEAMERICAN NYSEMKT AMEX LSE LON TSX "
    "TSXV TSX-V CSE OTC OTCQX OTCQB OTCPK OTCMKTS ASX HKEX HKSE SEHK HKG TYO TSE JPX SGX KRX "
    "KOSDAQ TWSE TPE SSE SZSE NSE BSE NZX JSE BMV BOVESPA B3 XETRA ETR FWB FRA EPA EURONEXT "
    "SWX BME CBOE BATS TADAWUL TASE MOEX XNYS XNAS XLON XTSE XASX XHKG XTKS XETR XPAR XAMS".split()
) | frozenset(
    {
        "NYSE ARCA",
        "NYSE AMERICAN",
        "NYSE MKT",
        "OTC MARKETS",
        "OTC PINK",
        "EURONEXT PARIS",
        "EURONEXT AMSTERDAM",
        "EURONEXT BRUSSELS",
        "EURONEXT LISBON",
        "EURONEXT DUBLIN",
        "EURONEXT MILAN",
        "EURONEXT OSLO",
    }
)
# English words or names unless written in capitals ("Aim: ...", "She: ...").
_EXCHANGES_IN_CAPITALS = frozenset(
    "AIM SIX BIT SET SHA SHE STO CPH HEL OSL AMS EBR WSE NEO ARCA IDX".split()
)
# The one or two words just before a colon; looked up in the sets above.
_BEFORE_COLON = re.compile(r"(?<![\w.-])(?:([A-Za-z]{2,9})[ ])?([A-Za-z0-9-]{2,12})[ ]?\Z")
_BEFORE_COLON_REACH = 24
_SYMBOL = r"[A-Z0-9]{1,6}(?:[.-][A-Z0-9]{1,2})?"
_SYMBOL_AFTER = re.compile(rf"[ ]?({_SYMBOL})(?![\w%]|[.,:]\d)")
# More symbols listed in the same bracket: "(NYSE: BRK.A, BRK.B)".
_MORE_SYMBOLS = re.compile(rf"[ ]?[,/][ ]?({_SYMBOL})(?![\w%]|[.,:]\d)")
_CLOSE_BRACKET = re.compile(r"[ ]?\)")
# Exchanges whose codes are numbers (Hong Kong 0700, Tokyo 7203, Shanghai 600519).
_NUMERIC_EXCHANGES = frozenset(
    "HKEX HKSE SEHK HKG XHKG TYO TSE JPX XTKS SSE SZSE SHA SHE KRX KOSDAQ TWSE TPE BSE "
    "TADAWUL".split()
)
_HONG_KONG = frozenset("HKEX HKSE SEHK HKG XHKG".split())
# Capitals that follow "NYSE:" in a sentence without being a symbol ("NYSE: IPO volumes...").
# Inside brackets, "(NYSE: USA)" is a symbol and is kept.
_NOT_SYMBOLS = frozenset(
    "A I AI CEO CFO COO IPO IPOS ETF ETFS GDP CPI PMI USA US UK EU SEC FED FOMC ECB IMF OPEC "
    "NYSE NASDAQ THE Q1 Q2 Q3 Q4 H1 H2 FY UPDATE BREAKING".split()
)

# -- Reuters instrument codes ----------------------------------------------------------

_REUTERS = re.compile(r"<(?P<root>[A-Z0-9]{1,6}?)(?P<cls>[a-z])?(?:\.(?P<venue>[A-Z]{1,3}))?>")
_REUTERS_FX = re.compile(r"<(?P<base>[A-Z]{3})(?P<quote>[A-Z]{3})?=[A-Z0-9]{0,6}>")
# A bare <B> or <TD> is markup when the text also has closing tags.
_HTML_TAGS = frozenset(
    "A B I P Q S U BR HR EM TD TR TH UL OL LI DL DT DD DIV SPAN PRE CODE BODY HEAD HTML "
    "TITLE META LINK IMG FONT CENTER TABLE TBODY THEAD TFOOT FORM INPUT H1 H2 H3 H4 H5 H6 "
    "SUP SUB SMALL BIG STRONG NOBR WBR ABBR CITE TT DFN KBD VAR MARK TIME NAV MAIN".split()
)

# -- crypto ----------------------------------------------------------------------------

# How a coin's name may be taken on its own.
_ANY = "any"  # any case: "bitcoin", "Bitcoin", "BITCOIN"
_PROPER = "proper"  # capitalised: "Tron", "Tether" ("tether" is a verb)
_CONTEXT = "context"  # capitalised and next to a crypto word or the symbol: "Avalanche"


class _Coin:
    __slots__ = ("bare", "names", "symbols")

    def __init__(self, symbols: str, names: dict[str, str], *, bare: bool) -> None:
        self.symbols = tuple(symbols.split())  # the first is the current ticker
        self.names = names  # lower-case name -> how it may be taken alone
        self.bare = bare  # the symbol alone, in capitals, is unambiguous


_COINS = (
    _Coin("BTC", {"bitcoin": _ANY}, bare=True),
    _Coin("ETH", {"ethereum": _ANY, "ether": _ANY}, bare=True),
    _Coin("USDT", {"tether": _PROPER}, bare=True),
    _Coin("XRP", {"xrp": _ANY}, bare=True),
    _Coin("BNB", {"bnb": _ANY, "binance coin": _ANY}, bare=True),
    _Coin("SOL", {"solana": _ANY}, bare=False),
    _Coin("USDC", {"usd coin": _ANY}, bare=True),
    _Coin("DOGE", {"dogecoin": _ANY}, bare=False),
    _Coin("ADA", {"cardano": _ANY}, bare=False),
    _Coin("TRX", {"tron": _PROPER}, bare=False),
    _Coin("TON", {"toncoin": _ANY}, bare=False),
    _Coin("AVAX", {"avalanche": _CONTEXT}, bare=True),
    _Coin("LINK", {"chainlink": _ANY}, bare=False),
    _Coin("DOT", {"polkadot": _ANY}, bare=False),
    _Coin("LTC", {"litecoin": _ANY}, bare=False),
    _Coin("SHIB", {"shiba inu": _ANY}, bare=True),
    _Coin("POL MATIC", {"polygon": _CONTEXT}, bare=False),
    _Coin("BCH", {"bitcoin cash": _ANY}, bare=False),
    _Coin("XLM", {"stellar lumens": _ANY, "stellar": _CONTEXT}, bare=True),
    _Coin("SUI", {"sui": _PROPER}, bare=False),
    _Coin("HBAR", {"hedera": _ANY}, bare=True),
    _Coin("UNI", {"uniswap": _ANY}, bare=False),
    _Coin("PEPE", {"pepe": _CONTEXT}, bare=False),
    _Coin("NEAR", {"near protocol": _ANY, "near": _CONTEXT}, bare=False),
    _Coin("APT", {"aptos": _ANY}, bare=False),
    _Coin("ICP", {"internet computer": _PROPER}, bare=False),
    _Coin("ETC", {"ethereum classic": _ANY}, bare=False),
    _Coin("XMR", {"monero": _ANY}, bare=True),
    _Coin("ATOM", {"cosmos": _CONTEXT}, bare=False),
    _Coin("FIL", {"filecoin": _ANY}, bare=False),
    _Coin("ARB", {"arbitrum": _ANY}, bare=False),
    _Coin("OP", {"optimism": _CONTEXT}, bare=False),
    _Coin("KAS", {"kaspa": _ANY}, bare=False),
    _Coin("WBTC", {"wrapped bitcoin": _ANY}, bare=True),
)
_COIN_BY_NAME = {name: coin for coin in _COINS for name in coin.names}
_COIN_BY_SYMBOL = {symbol: coin for coin in _COINS for symbol in coin.symbols}


_Trie = dict[str, "_Trie"]


def _trie_pattern(words: Iterable[str]) -> str:
    """One alternation sharing common prefixes, so each word start tries few branches.

    Longer words win ("bitcoin cash" over "bitcoin"); a space matches any spacing.
    """
    trie: _Trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def build(node: _Trie) -> str:
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + build(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        if len(branches) == 1 and "" not in node:
            return branches[0]
        group = "(?:" + "|".join(branches) + ")"
        return group + "?" if "" in node else group

    return build(trie)


# Matched on the lower-cased text; a plural "s" is allowed ("bitcoins").
_COIN_NAME = re.compile(rf"\b{_trie_pattern(_COIN_BY_NAME)}s?\b")
_COIN_NAME_ANY_CASE = re.compile(_COIN_NAME.pattern, re.IGNORECASE)
# A name matches only where its first word (or that word plus "s") is a whole word.
_COIN_FIRST_WORDS = frozenset(
    word for name in _COIN_BY_NAME for word in (name.split()[0], name.split()[0] + "s")
)
_WORD_SPACE = re.compile(r"\s+")
# Starting with the class (not \b) lets the scan skip lower-case text quickly.
_CAPITALS = re.compile(r"[A-Z](?<![^\W_][A-Z])[A-Z0-9]{1,5}\b")
_BRACKETED_SYMBOL = re.compile(r"\s?\(\s?([A-Z]{2,6})\s?\)")
# "Polygon network", "Avalanche blockchain", "Optimism's OP Mainnet".
_CRYPTO_WORD = re.compile(
    r"(?:['\u2019]s\s+(?:[\w-]+\s+){0,2}?|\s+)(?:network|blockchain|chain|tokens?|coins?"
    r"|protocol|ecosystem|mainnet|validators?|staking|layer[- ]?[12]|DeFi|crypto(?:currency)?)\b",
    re.IGNORECASE,
)
# "SOL/USDT", "ADA-USD": quoted against a dollar or a big coin.
_CRYPTO_QUOTE = re.compile(r"[/-](?:USDT|USDC|USD|BTC|ETH)\b")
_QUOTE_COINS = frozenset({"USDT", "USDC"})
_ETH_ZURICH = re.compile(r"\s+Z(?:u|\u00fc)rich", re.IGNORECASE)
_NEAR = 80  # characters either side in which a coin's name vouches for its symbol

_SLASHES = str.maketrans({"\u2044": "/", "\u2215": "/", "\uff0f": "/"})


def _plain(value: object) -> str:
    if not isinstance(value, str):
        return ""
    if value.isascii() or unicodedata.is_normalized("NFKC", value):
        return value.translate(_SLASHES) if "\u2044" in value or "\u2215" in value else value
    return unicodedata.normalize("NFKC", value).translate(_SLASHES)


def extract_tickers(title: str, text: str) -> tuple[str, ...]:
    """The distinct instruments a news item mentions, normalised and sorted.

    Equities come back as their symbol ("AAPL", "BRK.B", "0700"), FX as "EUR/USD",
    crypto as the coin's ticker ("BTC"). Input that is not a string counts as empty.
    """
    body = f"{_plain(title)}\n{_plain(text)}"
    found: set[str] = set()
    if "$" in body:
        found.update(_cashtags(body))
    if ":" in body:
        found.update(_exchange_symbols(body))
    if "&lt;" in body:
        found.update(_reuters_codes(body.replace("&lt;", "<").replace("&gt;", ">")))
    elif "<" in body:
        found.update(_reuters_codes(body))
    if "/" in body:
        found.update(_fx_pairs(body))
    found.update(_crypto(body))
    return tuple(sorted(found))


def _cashtags(body: str) -> Iterable[str]:
    for match in _CASHTAG.finditer(body):
        symbol = match.group(1)
        if symbol in _CASH_NEVER:
            continue
        if symbol in _CASH_UNITS and (
            body[match.start() - 1 : match.start()] == "("
            or body[match.end() : match.end() + 1] == ")"
            or _DIGIT_AFTER.match(body, match.end())
        ):
            continue
        yield symbol


def _exchange(body: str, colon: int) -> tuple[str, int] | None:
    """The exchange named just before a colon, upper-cased, and where it starts."""
    if not body[max(0, colon - 2) : colon].rstrip(" ")[-1:].isalnum():
        return None
    match = _BEFORE_COLON.search(body, max(0, colon - _BEFORE_COLON_REACH), colon)
    if match is None:
        return None
    first, last = match.group(1, 2)
    if first and f"{first} {last}".upper() in _EXCHANGES:
        return f"{first}{last}".upper(), match.start()
    if last.upper() in _EXCHANGES or last in _EXCHANGES_IN_CAPITALS:
        return last.upper(), match.start(2)
    return None


def _exchange_symbols(body: str) -> Iterable[str]:
    # Tried at each colon: an exchange must end just before it, a symbol start after it.
    colon = body.find(":")
    while colon != -1:
        exchange = _exchange(body, colon)
        first = _SYMBOL_AFTER.match(body, colon + 1) if exchange else None
        colon = body.find(":", colon + 1)
        if exchange is None or first is None:
            continue
        name, start = exchange
        bracketed = body[max(0, start - 2) : start].rstrip(" ")[-1:] == "("
        symbols = [first.group(1)]
        if bracketed:  # "(NYSE: BRK.A, BRK.B)": a list only when the bracket closes after it
            end = first.end()
            while more := _MORE_SYMBOLS.match(body, end):
                symbols.append(more.group(1))
                end = more.end()
            if len(symbols) > 1 and not _CLOSE_BRACKET.match(body, end):
                del symbols[1:]
        for symbol in symbols:
            if symbol[0].isdigit():
                if name not in _NUMERIC_EXCHANGES or not symbol.isdigit():
                    continue
                if not 3 <= len(symbol) <= 6:
                    continue
                if name in _HONG_KONG:
                    symbol = str(int(symbol)).zfill(4)
            elif not bracketed and symbol in _NOT_SYMBOLS:
                continue
            yield symbol


def _reuters_codes(body: str) -> Iterable[str]:
    markup = "</" in body
    for match in _REUTERS.finditer(body):
        root, cls, venue = match.group("root", "cls", "venue")
        if root.isdigit() and (venue is None or len(root) < 3):
            continue  # a footnote mark such as <1>
        bare = cls is None and venue is None
        if bare and markup and (root in _HTML_TAGS or f"</{root}" in body):
            continue
        if venue == "HK" and root.isdigit():
            root = str(int(root)).zfill(4)
        yield f"{root}.{cls.upper()}" if cls else root
    if "=" in body:
        for match in _REUTERS_FX.finditer(body):
            base, quote = match.group("base", "quote")
            if quote is None:
                if base == "USD" or base not in _CURRENCIES:
                    continue
                base, quote = (base, "USD") if base in _USD_QUOTED else ("USD", base)
            if base in _CURRENCIES and quote in _CURRENCIES and base != quote:
                yield f"{base}/{quote}"


def _fx_pairs(body: str) -> Iterable[str]:
    slash = body.find("/")
    while slash != -1:
        match = _FX_SLASH.match(body, max(0, slash - 3)) or _FX_SLASH.match(body, max(0, slash - 4))
        slash = body.find("/", slash + 1)
        if match:
            base, quote = match.group(1).upper(), match.group(2).upper()
            if base != quote and base in _CURRENCIES and quote in _CURRENCIES:
                yield f"{base}/{quote}"


def _crypto(body: str) -> set[str]:
    found: set[str] = set()
    # Where each coin (by its current ticker) is named, and where its symbols stand.
    named_at: dict[str, list[int]] = {}
    symbol_at: dict[str, list[int]] = {}
    unsure_symbols: list[tuple[_Coin, re.Match[str]]] = []
    unsure_names: list[tuple[_Coin, re.Match[str]]] = []

    for match in _CAPITALS.finditer(body):
        word = match.group()
        if len(word) == 6 and word[:3] in _CURRENCIES and word[3:] in _CURRENCIES:
            if word[:3] != word[3:] and (word[:3] in _MAJORS or word[3:] in _MAJORS):
                found.add(f"{word[:3]}/{word[3:]}")
            continue
        coin = _COIN_BY_SYMBOL.get(word)
        if coin is None:
            continue
        symbol_at.setdefault(coin.symbols[0], []).append(match.start())
        if not coin.bare:
            unsure_symbols.append((coin, match))
        elif word in _QUOTE_COINS and body[match.start() - 1 : match.start()] in ("/", "-"):
            continue  # the quote side of "SOL/USDT" is not what the item is about
        elif word != "ETH" or not _ETH_ZURICH.match(body, match.end()):
            found.add(word)

    lower = body.lower()
    # Lower-casing keeps positions unless a character grows ("İ"); then match any case.
    # Most items name no coin, and the name pattern costs more than the test.
    names: Iterable[re.Match[str]] = ()
    if len(lower) != len(body):
        names = _COIN_NAME_ANY_CASE.finditer(body)
    elif not _COIN_FIRST_WORDS.isdisjoint(word_set(lower)):
        names = _COIN_NAME.finditer(lower)
    for match in names:
        written = body[match.start() : match.end()]
        key = _WORD_SPACE.sub(" ", written.lower())
        if key not in _COIN_BY_NAME:
            key = key[:-1]  # a plural: "bitcoins"
        coin = _COIN_BY_NAME.get(key)
        if coin is None or written in coin.symbols:
            continue  # "NEAR" or "PEPE" in capitals is the symbol, seen above
        kind = coin.names[key]
        if kind != _ANY and not written[0].isupper():
            continue  # "tether", "near", "avalanche" are words
        named_at.setdefault(coin.symbols[0], []).append(match.start())
        bracketed = _BRACKETED_SYMBOL.match(body, match.end())
        if bracketed and bracketed.group(1) in coin.symbols:
            found.add(bracketed.group(1))  # "Polygon (MATIC)"
        elif kind != _CONTEXT or _CRYPTO_WORD.match(body, match.end()):
            found.add(coin.symbols[0])
        else:
            unsure_names.append((coin, match))

    for coin, match in unsure_symbols:
        # An ambiguous symbol counts quoted against a big coin or near its coin's name.
        if _CRYPTO_QUOTE.match(body, match.end()) or _near(
            named_at.get(coin.symbols[0]), match.start()
        ):
            found.add(match.group())
    for coin, match in unsure_names:
        if _near(symbol_at.get(coin.symbols[0]), match.start()):
            found.add(coin.symbols[0])
    return found


def _near(positions: list[int] | None, at: int) -> bool:
    if not positions:
        return False
    i = bisect.bisect_left(positions, at - _NEAR)
    return i < len(positions) and positions[i] <= at + _NEAR
