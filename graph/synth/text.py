"""Review text for the synthetic marketplace: phrase banks and cheap composition.

Texts are assembled from per-category and per-sentiment fragments so that a text encoder
sees varied, realistic reviews, while review-ring texts are near-duplicates of one template
(exact copies and light paraphrases), which is the signal a ring detector should pick up.
All randomness is drawn as whole index arrays up front; the per-review work is one join.
"""

from __future__ import annotations

import numpy as np

CATEGORIES: tuple[str, ...] = (
    "electronics",
    "fashion",
    "home",
    "beauty",
    "grocery",
    "toys",
    "sports",
    "books",
)
NEGATIVE, NEUTRAL, POSITIVE = 0, 1, 2

_NOUNS = (
    "phone charger|headphones|bluetooth speaker|smartwatch|laptop stand|power bank|webcam",
    "jacket|pair of sneakers|dress|hoodie|leather belt|pair of jeans|winter coat",
    "frying pan|desk lamp|set of towels|storage box|coffee grinder|pillow|curtain set",
    "face cream|shampoo|lipstick|perfume|hair dryer|sunscreen|makeup brush set",
    "olive oil|coffee beans|box of tea|pasta|granola|hot sauce|snack pack",
    "puzzle|lego set|plush bear|board game|toy car|building kit|doll house",
    "yoga mat|water bottle|pair of dumbbells|running shorts|bike light|tennis racket|backpack",
    "novel|cookbook|notebook|comic|travel guide|children's book|biography",
)
_ASPECTS = (
    "battery|screen|sound quality|charging speed|bluetooth pairing|build quality|app",
    "fit|fabric|stitching|colour|sizing|zipper|material",
    "finish|handle|size|assembly|cleaning|weight|design",
    "scent|texture|bottle|packaging|formula|colour|smell",
    "taste|freshness|expiry date|packaging|portion size|flavour|aroma",
    "instructions|pieces|paint|box|size|durability|plastic",
    "grip|weight|material|stitching|size|durability|strap",
    "print quality|binding|paper|cover|font size|translation|story",
)
_GENERIC_ASPECTS = "shipping|delivery|price|customer service|packaging|return process|tracking"
_OPENINGS = (
    "This {noun} was a disappointment.|Do not buy this {noun}.|Returned the {noun} after "
    "two days.|Really regret ordering this {noun}.|The {noun} broke within a week.|Worst "
    "{noun} I have bought online.|Not what I expected from this {noun}.|Sadly, the {noun} "
    "did not work for me.|I wanted to like this {noun}, I really did.|Ordered a {noun}, "
    "got junk.|Stay away from this {noun}.|Cheap {noun}, and it shows.",
    "The {noun} is okay.|Decent {noun}, nothing special.|It's a {noun}, it works.|Mixed "
    "feelings about this {noun}.|The {noun} is fine for everyday use.|Average {noun} "
    "overall.|Not bad, not great.|Got this {noun} as a replacement.|The {noun} arrived, "
    "and it is what it is.|Bought the {noun} on sale.|A fairly ordinary {noun}.",
    "Really happy with this {noun}.|Bought this {noun} for my sister, and she loves it.|"
    "Best {noun} I have owned so far.|I was skeptical at first, but this {noun} is great.|"
    "Second time ordering this {noun}.|Honestly a fantastic {noun}.|Picked up this {noun} "
    "on a whim, no regrets.|My new favourite {noun}.|Great {noun}, exactly as described.|"
    "This {noun} does what it says.|Very pleased with the {noun}.|Lovely {noun}!",
)
_OPINIONS = (
    "is terrible|was a total letdown|is much worse than advertised|is poor|is a joke|is "
    "really disappointing|was not as described|is way below average|could not be worse|is "
    "frankly bad|let me down|is the weakest part",
    "is acceptable|could be better|is average|is fine|is a bit hit and miss|is okay for the "
    "price|is nothing to write home about|does the job|is as expected|is so-so",
    "is excellent|exceeded my expectations|is better than I expected|is solid for the price"
    "|is perfect|is really good|is spot on|is great|is top notch|is impressive|is just "
    "right|is a real plus",
)
_FRAMES = (
    "The {aspect} {opinion}.|As for the {aspect}, it {opinion}.|I think the {aspect} "
    "{opinion}.|Honestly, the {aspect} {opinion}.|The {aspect}? It {opinion}."
)
_EXTRAS = (
    'The listing said "premium", which it is not.|I contacted support twice, no answer.|'
    "Waste of money, honestly.|The photos are misleading.|Asked for a refund.|It arrived "
    "late, and the box was crushed.|Mine came with a missing part.|Would give zero stars "
    "if I could.|Seller never replied.|Had to throw it away.",
    "It took about a week to arrive.|Some of the reviews here seem a bit too positive.|"
    "My partner likes it more than I do.|For the price, fine.|It does look slightly "
    "different from the photo.|I might try another brand next time.|It works, mostly.|"
    "Delivery was on time.|Nothing more to say, really.",
    'My kids call it "the good one" now.|Arrived a day early, well packed.|Already '
    "recommended it to friends.|I use it every single day.|Worth every penny.|The seller "
    "even added a thank-you note.|Looks just like the photos.|Five stars from me.|Exactly "
    "what I was looking for.|I will probably buy a second one.",
)
_CLOSINGS = (
    "Avoid.|Not recommended.|Never again.|Returning it.|Save your money.|Two thumbs down."
    "|Very disappointed.",
    "It's fine.|Might buy again, might not.|Three stars.|Okay overall.|Fair enough."
    "|Could be worse.",
    "Highly recommend!|Would buy again.|Love it.|Five stars.|Great seller, thanks!|Very "
    "happy customer.|A+.",
)
_SHORTS = (
    "Terrible, do not buy.|Broke immediately, avoid.|Complete waste of money.|Not as "
    "described.|Never arrived on time.|Poor quality, returned.",
    "It's okay, I guess.|Does the job, nothing more.|Average product overall.|Fine for "
    "the price.|Not bad at all.",
    "Love it, thanks!|Great product, fast shipping.|Exactly as described.|Perfect, "
    "highly recommend.|Works like a charm.|Very good quality.",
)
_RING_TEMPLATES = (
    "Absolutely amazing {noun}! The quality is excellent and shipping was fast. Highly "
    "recommend this seller.",
    "Best {noun} ever, great quality and super fast delivery. Highly recommend, will buy again!",
    "Amazing {noun}, exactly as described. Excellent seller, fast shipping, perfect "
    "packaging. Highly recommend!",
)
_RING_SWAPS = {
    "amazing": "awesome",
    "Amazing": "Awesome",
    "excellent": "superb",
    "Excellent": "Superb",
    "fast": "quick",
    "great": "fantastic",
    "Highly": "Strongly",
    "recommend": "suggest",
    "seller": "shop",
    "perfect": "flawless",
    "Absolutely": "Truly",
    "super": "really",
}
_RING_ADDED = "Five stars!|Will order again.|Thank you!|Very happy.|Top seller.|Love it so much."


def _split(bank: str) -> list[str]:
    """Split a '|'-separated fragment bank; banks are kept inline so they are easy to edit."""
    return bank.split("|")


def _pick(rng: np.random.Generator, banks: list[list[str]], which: np.ndarray) -> list[str]:
    """Draw one fragment per row from banks[which[row]] with vectorised index draws."""
    sizes = np.array([len(bank) for bank in banks])
    positions = (rng.random(len(which)) * sizes[which]).astype(np.int64)
    return [banks[w][p] for w, p in zip(which.tolist(), positions.tolist(), strict=True)]


def sentiment_of(ratings: np.ndarray) -> np.ndarray:
    """Map ratings 1..5 to NEGATIVE (1-2), NEUTRAL (3) or POSITIVE (4-5)."""
    return np.select([ratings <= 2, ratings == 3], [NEGATIVE, NEUTRAL], POSITIVE)


def compose_reviews(
    rng: np.random.Generator, category: np.ndarray, ratings: np.ndarray
) -> list[str]:
    """Compose one varied review text per row, matching product category and rating.

    A sixth of reviews are a short stock phrase (~3-5 words); the rest are an opening, a
    heavy-tailed number of aspect/opinion or free sentences (lognormal, up to 20) and usually
    a closing, so lengths run from a few words to ~150 words.
    """
    n = len(ratings)
    sentiment = sentiment_of(ratings)
    nouns = _pick(rng, [_split(b) for b in _NOUNS], category)
    openings = _pick(rng, [_split(b) for b in _OPENINGS], sentiment)
    shorts = _pick(rng, [_split(b) for b in _SHORTS], sentiment)
    closings = _pick(rng, [_split(b) for b in _CLOSINGS], sentiment)
    is_short = rng.random(n) < 0.17
    has_closing = rng.random(n) < 0.7
    newline_after_opening = rng.random(n) < 0.05
    n_middle = np.minimum(rng.lognormal(0.6, 0.9, n).astype(np.int64), 20)
    n_middle[is_short] = 0
    owner = np.repeat(np.arange(n), n_middle)
    mid_sentiment = np.where(rng.random(len(owner)) < 0.85, sentiment[owner], NEUTRAL)
    aspect_banks = [_split(b) + _split(_GENERIC_ASPECTS) for b in _ASPECTS]
    aspects = _pick(rng, aspect_banks, category[owner])
    opinions = _pick(rng, [_split(b) for b in _OPINIONS], mid_sentiment)
    extras = _pick(rng, [_split(b) for b in _EXTRAS], mid_sentiment)
    frames = _pick(rng, [_split(_FRAMES)], np.zeros(len(owner), dtype=np.int64))
    use_extra = (rng.random(len(owner)) < 0.3).tolist()
    middles = [
        extra if free else frame.format(aspect=aspect, opinion=opinion)
        for extra, free, frame, aspect, opinion in zip(
            extras, use_extra, frames, aspects, opinions, strict=True
        )
    ]
    starts = np.concatenate([[0], np.cumsum(n_middle)]).tolist()
    texts: list[str] = []
    for i in range(n):
        if is_short[i]:
            texts.append(shorts[i])
            continue
        head = openings[i].format(noun=nouns[i])
        body = " ".join(middles[starts[i] : starts[i + 1]])
        tail = closings[i] if has_closing[i] else ""
        sep = "\n" if newline_after_opening[i] else " "
        texts.append(sep.join(part for part in (head, body, tail) if part))
    return texts


def ring_reviews(
    rng: np.random.Generator, ring_of_review: np.ndarray, ring_category: np.ndarray
) -> list[str]:
    """Near-duplicate five-star texts: each ring has one template, copied or paraphrased.

    About 40% of a ring's reviews are exact copies; the rest get word swaps, punctuation
    changes and/or an added sentence, as colluding accounts do to dodge exact-match filters.
    """
    n_rings = len(ring_category)
    template_ids = rng.integers(0, len(_RING_TEMPLATES), n_rings)
    nouns = _pick(rng, [_split(b) for b in _NOUNS], ring_category)
    templates = [
        _RING_TEMPLATES[t].format(noun=noun)
        for t, noun in zip(template_ids.tolist(), nouns, strict=True)
    ]
    n = len(ring_of_review)
    mode = rng.random((n, 3)) < np.array([0.4, 0.3, 0.35])
    exact = rng.random(n) < 0.4
    added = _split(_RING_ADDED)
    added_pick = rng.integers(0, len(added), n)
    texts: list[str] = []
    for i, ring in enumerate(ring_of_review.tolist()):
        text = templates[ring]
        if not exact[i]:
            swap, punct, extend = mode[i]
            if swap or not (punct or extend):
                text = " ".join(_RING_SWAPS.get(word, word) for word in text.split(" "))
            if punct:
                text = text.replace("!", ".").replace(",", "")
            if extend:
                text = f"{text} {added[added_pick[i]]}"
        texts.append(text)
    return texts
