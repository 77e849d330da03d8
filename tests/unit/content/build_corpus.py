"""Writes tests/data/content_cases.json, the table-driven corpus of the content policy.

Run `.venv/bin/python -m tests.unit.content.build_corpus` after editing the cases below. Expected
violations are written by hand as (rule, matched text); this script only turns the matched text
into offsets by searching the case's text, so spans are computed independently of the policy code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS_PATH = Path(__file__).resolve().parents[2] / "data" / "content_cases.json"

LISTS: dict[str, dict[str, Any]] = {
    "global": {
        "severity": "block",
        "words": [
            "加微信",
            "加V",
            "贷款",
            "博彩",
            "代开发票",
            "刷单",
            "六合彩",
            "套现",
            "free money",
            "viagra",
            "casino",
            "sex",
            "payday loan",
        ],
    },
    "global:watch": {"severity": "warn", "words": ["秒杀", "最后一天", "limited offer"]},
    "carrier:china_mobile": {"severity": "block", "words": ["中奖", "积分清零"]},
    "carrier:china_unicom": {"severity": "block", "words": ["一夜暴富"]},
    "tenant:acme": {"severity": "block", "words": ["竞品", "rivalmart"]},
    "tenant:acme:promo": {"severity": "warn", "words": ["清仓"]},
    "tenant:globex": {"severity": "block", "words": ["停售"]},
}

RULESETS: dict[str, dict[str, Any]] = {
    "plain": {},
    "china": {
        "signature": {"min_chars": 2, "max_chars": 12},
        "unsubscribe_suffixes": ["拒收请回复R", "回T退订"],
    },
    "allowlist": {"link_domain_allowlist": ["t.cn", "example.com"]},
    "one_link": {"max_links": 1},
    "one_segment": {"max_segments": 1},
    "warn_spacing": {"link_spacing_severity": "warn"},
}

WARN_WORDS = {"秒杀", "最后一天", "limited offer", "清仓"}
WARN_MATCHES: set[str] = {"秒 杀", "ＬＩＭＩＴＥＤ ＯＦＦＥＲ", "Limited Offer", "最 后 一 天"}

CASES: list[dict[str, Any]] = []


def case(
    case_id: str,
    text: str,
    *expected: tuple[Any, ...],
    ruleset: str = "plain",
    channel: str = "sms",
    category: str = "marketing",
    carrier: str | None = None,
    tenant: str | None = None,
    fixed: str | None = None,
    encoding: str | None = None,
    segments: int | None = None,
) -> None:
    """expected items: (rule, match) or (rule, match, severity) or (rule, match, severity, start)."""
    violations = []
    search_from: dict[tuple[str, str], int] = {}
    for item in expected:
        rule, match = item[0], item[1]
        severity = item[2] if len(item) > 2 and item[2] else _default_severity(rule, match, ruleset)
        if len(item) > 3:
            start = item[3]
        else:
            start = text.find(match, search_from.get((rule, match), 0))
            if start < 0 or match == "":
                raise ValueError(f"{case_id}: {match!r} not in text; give the start explicitly")
            search_from[(rule, match)] = start + 1
        violations.append(
            {"rule": rule, "severity": severity, "start": start, "end": start + len(match), "match": match}
        )
    entry: dict[str, Any] = {"id": case_id, "text": text, "channel": channel, "ruleset": ruleset}
    if category != "marketing":
        entry["category"] = category
    if carrier:
        entry["carrier"] = carrier
    if tenant:
        entry["tenant"] = tenant
    entry["expect"] = {
        "ok": all(violation["severity"] != "block" for violation in violations),
        "violations": sorted(violations, key=lambda v: (v["start"], v["end"], v["rule"])),
    }
    if fixed is not None:
        entry["expect"]["fixed_text"] = fixed
    if encoding is not None:
        entry["expect"]["encoding"] = encoding
    if segments is not None:
        entry["expect"]["segments"] = segments
    if any(existing["id"] == case_id for existing in CASES):
        raise ValueError(f"duplicate case id {case_id}")
    CASES.append(entry)


def _default_severity(rule: str, match: str, ruleset: str) -> str:
    if rule == "blocked_word" and (match in WARN_WORDS or match in WARN_MATCHES):
        return "warn"
    if rule == "link_spacing" and ruleset == "warn_spacing":
        return "warn"
    if rule in ("hidden_control", "link_non_ascii"):
        return "warn"
    return "block"


W = "blocked_word"
L = "link_spacing"

# --- clean marketing and notice texts -------------------------------------------------------------
case("clean-cn-notice", "您的快递已到达小区驿站，请凭取件码8826于今日20:00前领取。", encoding="UCS-2", segments=1)
case("clean-cn-bill", "尊敬的客户，您本月账单金额为128.50元，还款日为11月25日，请按时还款。")
case("clean-cn-appointment", "您预约的体检时间为明天上午9点，请空腹前往，携带身份证。")
case("clean-cn-recall", "好久不见！您收藏的商品降价了，打开App即可查看。")
case("clean-cn-member", "会员日福利：全场满199减30，仅限本周末。")
case("clean-cn-course", "您报名的Python入门课将于周六14:00开课，请提前10分钟进入教室。")
case("clean-cn-order", "您的订单 20241101-8876 已发货，预计2天内送达。")
case("clean-cn-weather", "明日有大雨，出行请带好雨具，注意安全。")
case("clean-en-otp", "Your verification code is 482913. It expires in 10 minutes.", encoding="GSM-7", segments=1)
case("clean-en-delivery", "Your parcel is out for delivery today between 2pm and 4pm.")
case("clean-en-reminder", "Reminder: your dentist appointment is tomorrow at 9:30am.")
case("clean-en-recall", "We miss you! Your cart still has 2 items waiting. Reply STOP to opt out.")
case("clean-en-version", "App version 3.2.1 is out with bug fixes, e.g. faster login.")
case("clean-en-decimal", "Your balance is 12.50 EUR and 3.5% interest applies.")
case("clean-en-email-address", "Questions? Write to support@example.com any time.")
case("clean-en-essex", "Our new Essex store opens Monday, see you there.")
case("clean-en-sextant", "Antique sextant auction this Sunday at 10am.")
case("clean-en-lets-exit", "Please don't forget: let's exit via gate B after the show.")
case("clean-en-casinos-word", "Occasional showers expected over the weekend.")
case("clean-en-middlesex", "Middlesex University open day: bring a friend!")
case("clean-cn-partial-word", "您的微信支付已开通，可在设置中查看。")
case("clean-cn-daikuan-split", "贷记卡积分可兑换礼品。")
case("clean-mixed-vip", "加vip群享受专属折扣，详情见会员中心。")

# --- blocked words as written -----------------------------------------------------------------------
case("word-jiaweixin", "想了解更多优惠请加微信咨询客服。", (W, "加微信"))
case("word-daikuan", "急用钱？低息贷款当天到账。", (W, "贷款"))
case("word-bocai", "最新博彩平台上线，注册即送。", (W, "博彩"))
case("word-fapiao", "专业代开发票，正规渠道。", (W, "代开发票"))
case("word-shuadan", "在家刷单日结，名额有限。", (W, "刷单"))
case("word-liuhecai", "六合彩内部资料免费送。", (W, "六合彩"))
case("word-taoxian", "信用卡套现手续费低至0.3%。", (W, "套现"))
case("word-free-money", "Claim your free money today before midnight!", (W, "free money"))
case("word-viagra", "Cheap viagra shipped discreetly.", (W, "viagra"))
case("word-casino", "Join the best online casino tonight.", (W, "casino"))
case("word-payday", "Need cash? Payday loan approved in 5 minutes.", (W, "Payday loan"))
case("word-sex-alone", "Best sex tips in our newsletter.", (W, "sex"))
case("word-two-words", "加微信领取贷款优惠。", (W, "加微信"), (W, "贷款"))
case("word-repeated", "贷款贷款贷款", (W, "贷款"), (W, "贷款"), (W, "贷款"))
case("word-at-start", "博彩资讯每日推送", (W, "博彩"))
case("word-at-end", "本店支持刷单", (W, "刷单"))
case("word-whole-text", "贷款", (W, "贷款"))
case("word-jiav", "有问题加V：abc123", (W, "加V"))
case("word-en-upper", "FREE MONEY for everyone!!!", (W, "FREE MONEY"))
case("word-en-title", "Viagra and more at our shop", (W, "Viagra"))
case("word-en-punct-after", "Visit our casino.", (W, "casino"))
case("word-en-cjk-neighbour", "线上casino体验", (W, "casino"))
case("word-warn-miaosha", "双十一秒杀开始啦，快来抢购！", (W, "秒杀"))
case("word-warn-en", "This is a limited offer for members.", (W, "limited offer"))
case("word-warn-and-block", "秒杀价贷款", (W, "秒杀"), (W, "贷款"))
case("word-longest-wins", "最后一天", (W, "最后一天"))

# --- evasion forms -------------------------------------------------------------------------------------
case("evade-spaces", "有需要的加 微 信详聊", (W, "加 微 信"))
case("evade-zwsp", "有需要的加\u200b微\u200b信详聊", (W, "加\u200b微\u200b信"))
case("evade-zwnj", "请加\u200c微信", (W, "加\u200c微信"))
case("evade-zwj", "请加微\u200d信", (W, "加微\u200d信"))
case("evade-word-joiner", "请加\u2060微信", (W, "加\u2060微信"))
case("evade-bom", "请加\ufeff微\ufeff信", (W, "加\ufeff微\ufeff信"))
case("evade-dash", "低息贷-款秒到", (W, "贷-款"))
case("evade-dot", "贷.款找我们", (W, "贷.款"))
case("evade-star", "专业代*开*发*票", (W, "代*开*发*票"))
case("evade-underscore", "博_彩网站", (W, "博_彩"))
case("evade-fullwidth-space", "刷　单兼职", (W, "刷　单"))
case("evade-mixed-separators", "加 -微_信", (W, "加 -微_信"))
case("evade-fullwidth-latin", "ＦＲＥＥ ＭＯＮＥＹ inside", (W, "ＦＲＥＥ ＭＯＮＥＹ"))
case("evade-fullwidth-v", "请加Ｖ了解", (W, "加Ｖ"))
case("evade-lower-v", "请加v了解", (W, "加v"))
case("evade-spaced-latin", "get f r e e m o n e y now", (W, "f r e e m o n e y"))
case("evade-dashed-latin", "buy v-i-a-g-r-a online", (W, "v-i-a-g-r-a"))
case("evade-dotted-latin", "c.a.s.i.n.o bonus", (W, "c.a.s.i.n.o"))
case("evade-mixed-case", "ViAgRa deals", (W, "ViAgRa"))
case("evade-fullwidth-mixed", "ｖｉａｇｒａ特价", (W, "ｖｉａｇｒａ"))
case("evade-phrase-glued", "freemoney!", (W, "freemoney"))
case("evade-phrase-multi-space", "free   money", (W, "free   money"))
case("evade-spaced-sex", "s e x videos", (W, "s e x"))
case("evade-slash", "贷/款", (W, "贷/款"))
case("evade-emoji-between", "加🙂微🙂信", (W, "加🙂微🙂信"))
case("evade-warn-spaced", "限时秒 杀", (W, "秒 杀"))
case("evade-fullwidth-warn", "ＬＩＭＩＴＥＤ ＯＦＦＥＲ today", (W, "ＬＩＭＩＴＥＤ ＯＦＦＥＲ"))
case("evade-newline", "贷\n款", (W, "贷\n款"))
case("evade-combining", "v\u0332i\u0332a\u0332g\u0332r\u0332a\u0332 sale", (W, "v\u0332i\u0332a\u0332g\u0332r\u0332a"))

# --- Latin false-positive guards --------------------------------------------------------------------
case(
    "guard-essex-sussex",
    "Essex and Sussex weather",
)
case("guard-sex-inside-word", "unisex sizes available")
case("guard-lets-exit-caps", "LET'S EXIT NOW")
case("guard-casinos-plural", "casinos")
case(
    "guard-sex-then-word",
    "sexy deals",
)
case("guard-free-moneybox", "carefree moneybox savings")
case("guard-jiav-vip", "加VIP通道")

# --- links at every position --------------------------------------------------------------------------
LINK = "https://t.cn/A6x9Kq"
case("link-alone", LINK)
case("link-start-spaced", f"{LINK} 点击领取优惠券")
case("link-end-spaced", f"点击领取优惠券 {LINK}")
case("link-middle-spaced", f"点击 {LINK} 领取优惠券")
case("link-start-glued-cjk", f"{LINK}点击领取", (L, LINK), fixed=f"{LINK} 点击领取")
case("link-end-glued-cjk", f"点击领取{LINK}", (L, LINK), fixed=f"点击领取 {LINK}")
case("link-both-glued-cjk", f"点击{LINK}领取", (L, LINK), fixed=f"点击 {LINK} 领取")
case("link-glued-fw-comma", f"详情见{LINK}，欢迎参与", (L, LINK), fixed=f"详情见 {LINK} ，欢迎参与")
case("link-glued-fw-period", f"详情请访问 {LINK}。", (L, LINK), fixed=f"详情请访问 {LINK} 。")
case("link-glued-fw-exclaim", f"快来 {LINK}！", (L, LINK), fixed=f"快来 {LINK} ！")
case("link-glued-fw-colon", f"链接：{LINK}", (L, LINK), fixed=f"链接： {LINK}")
case("link-in-lenticular", f"【{LINK}】", (L, LINK), fixed=f"【 {LINK} 】")
case("link-after-lenticular", f"【京东】{LINK} 领券", (L, LINK), fixed=f"【京东】 {LINK} 领券")
case("link-in-fw-parens", f"官网（{LINK}）", (L, LINK), fixed=f"官网（ {LINK} ）")
case("link-in-ascii-parens", f"site ({LINK})", (L, LINK), fixed=f"site ( {LINK} )")
case("link-ascii-period", f"See {LINK}.", (L, LINK), fixed=f"See {LINK} .")
case("link-ascii-comma", f"Open {LINK}, then log in", (L, LINK), fixed=f"Open {LINK} , then log in")
case("link-ascii-quote", f'Tap "{LINK}" now', (L, LINK), fixed=f'Tap " {LINK} " now')
case("link-glued-latin", f"Visit:{LINK} today", (L, LINK), fixed=f"Visit: {LINK} today")
case("link-tab-newline", f"点击\t{LINK}\n领取")
# U+3000 and the other Unicode spaces do not end a link on every handset (older Android releases took
# them into the path): glued, and the fix makes them ASCII spaces. docs/content.md has the sources.
case("link-ideographic-space", f"点击\u3000{LINK}\u3000领取", (L, LINK), fixed=f"点击 {LINK} 领取")
case("link-ideographic-space-after", f"点击 {LINK}\u3000领取", (L, LINK), fixed=f"点击 {LINK} 领取")
case("link-nbsp-before", f"Tap\u00a0{LINK} now", (L, LINK), fixed=f"Tap {LINK} now")
case("link-ideographic-between-two", "a.cn/1\u3000b.cn/2", (L, "a.cn/1"), (L, "b.cn/2"), fixed="a.cn/1 b.cn/2")
# A scheme in full-width forms is no scheme to any linkifier: reported from the scheme on, written in ASCII.
case(
    "link-fullwidth-scheme-glued",
    "点击ｈｔｔｐｓ：／／a.cn/x领取",
    (L, "ｈｔｔｐｓ：／／a.cn/x"),
    ("link_fullwidth", "ｈｔｔｐｓ：／／a.cn/x"),
    fixed="点击 https://a.cn/x 领取",
)
case(
    "link-fullwidth-scheme-spaced",
    "点击 ｈｔｔｐ：／／a.cn/x 领取",
    ("link_fullwidth", "ｈｔｔｐ：／／a.cn/x"),
    fixed="点击 http://a.cn/x 领取",
)
case(
    "link-fullwidth-colon-only",
    "Open https：//example.com/a now",
    ("link_fullwidth", "https：//example.com/a"),
    fixed="Open https://example.com/a now",
)
case(
    "link-fullwidth-upper",
    "ＨＴＴＰＳ：／／t.cn/Ab",
    ("link_fullwidth", "ＨＴＴＰＳ：／／t.cn/Ab"),
    fixed="https://t.cn/Ab",
)
case(
    "link-fullwidth-scheme-warn",
    "点 ｈｔｔｐｓ：／／a.cn",
    ("link_fullwidth", "ｈｔｔｐｓ：／／a.cn", "warn"),
    ruleset="warn_spacing",
    fixed="点 https://a.cn",
)
# A path segment or query value that opens with a non-ASCII letter belongs to the link (IRI), up
# to white space or punctuation, as Android's and iOS's linkifiers read it; a warning says so.
case("link-iri-path", "https://a.cn/路径/中文领取", ("link_non_ascii", "https://a.cn/路径/中文领取"))
case(
    "link-iri-path-glued-before",
    "点击https://a.cn/路径/中文",
    (L, "https://a.cn/路径/中文"),
    ("link_non_ascii", "https://a.cn/路径/中文"),
    fixed="点击 https://a.cn/路径/中文",
)
case(
    "link-iri-path-then-punctuation",
    "详见 https://a.cn/活动，谢谢",
    (L, "https://a.cn/活动"),
    ("link_non_ascii", "https://a.cn/活动"),
    fixed="详见 https://a.cn/活动 ，谢谢",
)
case("link-iri-query", "搜 https://a.cn/s?q=中文 看看", ("link_non_ascii", "https://a.cn/s?q=中文"))
case("link-iri-bare", "点 t.cn/领取 吧", ("link_non_ascii", "t.cn/领取"))
case("link-ascii-segment-then-cjk", "https://a.cn/x/领", ("link_non_ascii", "https://a.cn/x/领"))
case("link-bare-short", "点击 t.cn/RxY2 领取")
case("link-bare-short-glued", "点击t.cn/RxY2领取", (L, "t.cn/RxY2"), fixed="点击 t.cn/RxY2 领取")
case("link-www-glued", "官网www.example.com欢迎访问", (L, "www.example.com"), fixed="官网 www.example.com 欢迎访问")
case("link-www-spaced", "Visit www.example.com today")
case("link-bare-domain-glued-fw", "访问jd.com，领红包", (L, "jd.com"), fixed="访问 jd.com ，领红包")
case("link-http-upper", "OPEN HTTP://EXAMPLE.COM/A NOW")
case("link-query", "点击 https://m.example.com/p?id=42&from=sms 查看")
case(
    "link-query-glued",
    "点击https://m.example.com/p?id=42&from=sms查看",
    (L, "https://m.example.com/p?id=42&from=sms"),
    fixed="点击 https://m.example.com/p?id=42&from=sms 查看",
)
case("link-port", "Admin at http://example.com:8080/x ok")
case("link-two-spaced", "A t.cn/a1 和 t.cn/b2 都可以")
case("link-two-glued", "先点t.cn/a1再点t.cn/b2哦", (L, "t.cn/a1"), (L, "t.cn/b2"), fixed="先点 t.cn/a1 再点 t.cn/b2 哦")
case("link-three-too-many", "a.cn/1 b.cn/2 c.cn/3", ("too_many_links", "c.cn/3"))
case(
    "link-four-too-many-glued",
    "看a.cn/1 b.cn/2 c.cn/3 d.cn/4",
    (L, "a.cn/1"),
    ("too_many_links", "c.cn/3"),
    fixed="看 a.cn/1 b.cn/2 c.cn/3 d.cn/4",
)
case("link-one-allowed", "a.cn/1 和 b.cn/2", ("too_many_links", "b.cn/2"), ruleset="one_link")
case("link-email-not-link", "发邮件到 kefu@example.com 咨询")
case("link-email-glued", "邮箱kefu@example.com有回复")
case("link-not-tld", "文件 report.pdf 已上传")
case("link-wikipedia-parens", "See https://en.wikipedia.org/wiki/Foo_(bar) now")
case(
    "link-unbalanced-paren",
    "(see https://example.com/x)",
    (L, "https://example.com/x"),
    fixed="(see https://example.com/x )",
)
case("link-scheme-only", "type http:// then the address")
case("link-spacing-warn", f"点击{LINK}", (L, LINK), ruleset="warn_spacing", fixed=f"点击 {LINK}")
case("link-and-word", f"加微信{LINK}", (W, "加微信"), (L, LINK), fixed=f"加微信 {LINK}")
case("link-path-has-word", "see t.cn/daikuan please")
case("link-fw-question", f"有疑问？{LINK}？", (L, LINK), fixed=f"有疑问？ {LINK} ？")
case("link-cjk-quote", f"点击“{LINK}”", (L, LINK), fixed=f"点击“ {LINK} ”")
case("link-book-title", f"《{LINK}》", (L, LINK), fixed=f"《 {LINK} 》")
case("link-after-number", f"2{LINK}", (L, LINK), fixed=f"2 {LINK}")

# --- link domain allowlist ----------------------------------------------------------------------------
case("allow-ok", "点击 https://t.cn/abc 查看", ruleset="allowlist")
case("allow-subdomain", "点击 https://m.example.com/x 查看", ruleset="allowlist")
case("allow-bare-ok", "点击 t.cn/abc 查看", ruleset="allowlist")
case("allow-rejected", "点击 https://bit.ly/3xYz 查看", ("link_domain", "https://bit.ly/3xYz"), ruleset="allowlist")
case(
    "allow-lookalike",
    "点击 https://example.com.evil.cn/x 查看",
    ("link_domain", "https://example.com.evil.cn/x"),
    ruleset="allowlist",
)
case(
    "allow-suffix-trick",
    "点击 https://notexample.com/x 查看",
    ("link_domain", "https://notexample.com/x"),
    ruleset="allowlist",
)
case("allow-mixed", "t.cn/a 和 evil.cn/b", ("link_domain", "evil.cn/b"), ruleset="allowlist")
case(
    "allow-glued-and-rejected",
    "点bit.ly/x",
    ("link_domain", "bit.ly/x"),
    (L, "bit.ly/x"),
    ruleset="allowlist",
    fixed="点 bit.ly/x",
)
case("allow-upper-host", "Open HTTPS://T.CN/Ab now", ruleset="allowlist")

# --- encoding and segments ----------------------------------------------------------------------------
case("enc-gsm-160", "a" * 160, encoding="GSM-7", segments=1)
case("enc-gsm-161", "a" * 161, encoding="GSM-7", segments=2)
case("enc-gsm-306", "b" * 306, encoding="GSM-7", segments=2)
case("enc-gsm-307", "b" * 307, encoding="GSM-7", segments=3)
case("enc-gsm-ext-80", "{}" * 40, encoding="GSM-7", segments=1)
case("enc-gsm-ext-81", "€" * 81, encoding="GSM-7", segments=2)
case("enc-gsm-ext-boundary", "a" * 152 + "[" + "a" * 10, encoding="GSM-7", segments=2)
# 306 septets would fit in two segments, but the escape pair may not straddle the first boundary.
case("enc-gsm-ext-no-split", "a" * 152 + "^" + "a" * 152, encoding="GSM-7", segments=3)
case("enc-gsm-specials", "Price: 5£ or 6¥ @ Ølstue, ¿qué? Δ", encoding="GSM-7", segments=1)
case("enc-ucs2-accent", "Café ça coûte 5€", encoding="UCS-2", segments=1)
case("enc-ucs2-70", "好" * 70, encoding="UCS-2", segments=1)
case("enc-ucs2-71", "好" * 71, encoding="UCS-2", segments=2)
case("enc-ucs2-134", "好" * 134, encoding="UCS-2", segments=2)
case("enc-ucs2-135", "好" * 135, encoding="UCS-2", segments=3)
case("enc-emoji-35", "🎉" * 35, encoding="UCS-2", segments=1)
case("enc-emoji-36", "🎉" * 36, encoding="UCS-2", segments=2)
# 134 units would fit in two segments, but the surrogate pair may not straddle the first boundary.
case("enc-emoji-no-split", "好" * 66 + "🎉" + "好" * 66, encoding="UCS-2", segments=3)
case("enc-backtick-ucs2", "run `ls` now", encoding="UCS-2", segments=1)
case("enc-too-long", "好" * 71, ("too_long", "好" * 71), ruleset="one_segment", encoding="UCS-2", segments=2)
case("enc-max-six-ok", "x" * (153 * 6), encoding="GSM-7", segments=6)
case("enc-max-six-over", "x" * (153 * 6 + 1), ("too_long", "x" * (153 * 6 + 1)), encoding="GSM-7", segments=7)

# --- China signature and unsubscribe rules ----------------------------------------------------------
case("cn-ok", "【京东】您的优惠券即将到期，点击 t.cn/abc 使用，回T退订", ruleset="china")
case("cn-ok-r", "【招商银行】本月积分翻倍活动开始了。拒收请回复R", ruleset="china")
case("cn-ok-fw-r", "【招商银行】本月积分翻倍活动开始了。拒收请回复Ｒ", ruleset="china")
case("cn-ok-trailing-period", "【美团】周末外卖满减，回T退订。", ruleset="china")
case("cn-ok-lower-t", "【美团】周末外卖满减，回t退订", ruleset="china")
case("cn-missing-signature", "您的优惠券即将到期，回T退订", ("signature_missing", "", "block", 0), ruleset="china")
case("cn-signature-not-at-start", "您好【京东】优惠，回T退订", ("signature_missing", "", "block", 0), ruleset="china")
case("cn-signature-unclosed", "【京东优惠来了，回T退订", ("signature_missing", "", "block", 0), ruleset="china")
case("cn-signature-short", "【京】优惠来了，回T退订", ("signature_length", "【京】"), ruleset="china")
case(
    "cn-signature-long",
    "【北京市朝阳区某某某某科技有限公司】优惠，回T退订",
    ("signature_length", "【北京市朝阳区某某某某科技有限公司】"),
    ruleset="china",
)
case("cn-signature-empty", "【】优惠，回T退订", ("signature_length", "【】"), ruleset="china")
case("cn-missing-unsubscribe", "【京东】优惠券即将到期", ("unsubscribe_missing", "", "block", 11), ruleset="china")
case(
    "cn-unsubscribe-not-at-end",
    "【京东】回T退订，优惠券即将到期",
    ("unsubscribe_missing", "", "block", 16),
    ruleset="china",
)
case("cn-transactional-no-unsubscribe", "【顺丰】您的快递已签收。", ruleset="china", category="transactional")
case(
    "cn-transactional-no-signature",
    "您的快递已签收。",
    ("signature_missing", "", "block", 0),
    ruleset="china",
    category="transactional",
)
case(
    "cn-both-missing",
    "优惠来了",
    ("signature_missing", "", "block", 0),
    ("unsubscribe_missing", "", "block", 4),
    ruleset="china",
)
case(
    "cn-glued-link-and-word",
    "【某某贷】低息贷款点击t.cn/x，回T退订",
    (W, "贷款"),
    (L, "t.cn/x"),
    ruleset="china",
    fixed="【某某贷】低息贷款点击 t.cn/x ，回T退订",
)
case("cn-email-channel-ignores-sms-rules", "优惠来了", ruleset="china", channel="email", encoding="UTF-8", segments=1)

# --- scoped lists: carrier and tenant -------------------------------------------------------------
case("scope-carrier-applies", "恭喜您中奖了", (W, "中奖"), carrier="china_mobile")
case("scope-carrier-other", "恭喜您中奖了", carrier="china_telecom")
case("scope-carrier-none", "恭喜您中奖了")
case("scope-carrier-key-form", "积分清零提醒", (W, "积分清零"), carrier="carrier:china_mobile")
case("scope-carrier-unicom", "一夜 暴富不是梦", (W, "一夜 暴富"), carrier="china_unicom")
case("scope-tenant-applies", "不要买竞品的东西", (W, "竞品"), tenant="acme")
case("scope-tenant-other", "不要买竞品的东西", tenant="globex")
case("scope-tenant-none", "不要买竞品的东西")
case("scope-tenant-named-list", "年末清仓大促", (W, "清仓", "warn"), tenant="acme")
case("scope-tenant-en", "Cheaper than RivalMart!", (W, "RivalMart"), tenant="acme")
case("scope-tenant-globex", "该产品即将停售", (W, "停售"), tenant="globex")
case("scope-all-three", "中奖竞品贷款", (W, "中奖"), (W, "竞品"), (W, "贷款"), carrier="china_mobile", tenant="acme")

# --- empty, hard maximum, other channels ----------------------------------------------------------
case("empty", "", ("empty", "", "block", 0), encoding="GSM-7", segments=0)
case("blank", "   \n ", ("empty", "   \n "), segments=0)
case("hard-max", "好" * 1601, ("hard_max", "好", "block", 1600), encoding="UCS-2", segments=24)
case("hard-max-far-over", "贷款" + "a" * 3000, ("hard_max", "a", "block", 1600), encoding="UCS-2", segments=45)
case("hard-max-exact-ok", "a" * 1600, ("too_long", "a" * 1600), encoding="GSM-7", segments=11)
case(
    "email-word",
    "Subject line aside: free money inside",
    (W, "free money"),
    channel="email",
    encoding="UTF-8",
    segments=1,
)
case("push-glued-link", f"新品上架{LINK}", (L, LINK), channel="push", fixed=f"新品上架 {LINK}", encoding="UTF-8")
case("webhook-long-ok", "好" * 500, channel="webhook", encoding="UTF-8", segments=1)
case("voice-word", "您好，这里是贷款中心", (W, "贷款"), channel="voice", encoding="UTF-8")
case("email-empty", "", ("empty", "", "block", 0), channel="email", segments=1)

# --- hidden control characters: bidi embeddings, overrides, isolates; C0 and C1 controls -----------
H = "hidden_control"
case(
    "control-rlo-disguises-link",
    "点击 https://a.cn/\u202eexe.gpj 领取",
    (L, "https://a.cn/"),
    (H, "\u202e"),
    fixed="点击 https://a.cn/exe.gpj 领取",
)
case("control-isolates", "订单\u206712345\u2069已发货", (H, "\u2067"), (H, "\u2069"), fixed="订单12345已发货")
case("control-embedding-run", "价格\u202a\u202b99元", (H, "\u202a\u202b"), fixed="价格99元")
case("control-pdf", "Hello\u202c world", (H, "\u202c"), fixed="Hello world")
case("control-c1-next-line", "您好\x85欢迎光临", (H, "\x85"), fixed="您好欢迎光临")
case("control-c1-csi", "Sale\x9b31m today", (H, "\x9b"), fixed="Sale31m today")
case("control-c0-bell", "Hi\x07 there", (H, "\x07"), fixed="Hi there")
case("control-c0-escape", "code\x1b[0m 1234", (H, "\x1b"), fixed="code[0m 1234")
case("control-hides-word", "加\u202e微信", (W, "加\u202e微信"), (H, "\u202e"), fixed="加微信")
case("control-rtl-marks-kept", "مرحبا\u200f 123 \u200e\u061c")
case("control-push", "新品\u202e上架", (H, "\u202e"), channel="push", fixed="新品上架", encoding="UTF-8")


def main() -> None:
    CORPUS_PATH.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "description": "Table-driven cases for gateway.domain.content.check_content; generated by "
        "tests/unit/content/build_corpus.py (edit the cases there).",
        "lists": LISTS,
        "rulesets": RULESETS,
        "cases": CASES,
    }
    CORPUS_PATH.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(CASES)} cases to {CORPUS_PATH}")


if __name__ == "__main__":
    main()
