"""Generate the small built-in demo: a mixed-domain corpus and a targets file.

The demo lets a new user run the whole pipeline in minutes without downloading
anything, and gives the tests a corpus whose right answers are known: the
``science_qa`` targets should pull science documents, ``word_problems`` should
pull arithmetic ones. All text comes from the templates and vocabularies below
(places, people and organisations are invented), filled in with
``random.Random`` seeded from ``seed``, so the same seed always yields
byte-identical files.

Usage: ``python -m nagindex.demo OUT_DIR [--docs 400] [--seed 0]``
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import string
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

N_NOTES = 5          # documents written as single .txt files under corpus/notes/
N_TARGETS = 12       # target examples per task
NOISE_RATE = 0.2     # share of documents given boilerplate and a low quality
MIN_WORDS = 40       # documents are extended up to 8 sentences to reach this

BOILERPLATE = [
    "Click here to subscribe to our newsletter!",
    "Accept all cookies to continue reading.",
    "Share this on Facebook, Twitter and email.",
    "ADVERTISEMENT",
    "Related posts: Top 10 tips you will not believe | Read more >>",
    "Copyright 2019 All rights reserved. Terms | Privacy | Contact",
    "Sign up now and get 20% off your first order!!!",
]

# Each template domain: ``lead`` always opens the document, the rest are drawn
# without replacement. ``vocab`` values are drawn three at a time without
# replacement, bound to {key}, {key2} and {key3}, so one document keeps one
# cast of names. ``records`` are coherent bundles of fields (one per document);
# ``numbers`` are integer (lo, hi) or float (lo, hi, "f") ranges.
DOMAINS: dict[str, dict] = {
    "science": {
        "lead": "{Field} lessons often come back to {topic}.",
        "templates": [
            "Put simply, {fact}.",
            "A familiar example is that {example}.",
            "In a {adj} lab session, students measure {quantity} in {unit}.",
            "Researchers at {lab} reported {n1} {unit} for {quantity} in one trial.",
            "A simple demonstration needs only a {prop3} and a few minutes of class time.",
            "Many students first meet {topic} through the observation that {example}.",
            "Repeating the measurement {n3} times and averaging reduces random error.",
            "Scientists test ideas like this by changing one variable at a time.",
            "A common misconception is that {topic} only matters in the laboratory.",
            "Quiz questions on {topic} often ask students to predict what happens next.",
            "Teachers often explain {topic} with a {prop} and a {prop2}.",
            "The key point is that {fact}, which anyone can check with simple tools.",
            "Early experiments on {topic} were {adj2}, but modern instruments are far more precise.",
            "Understanding {topic} also helps explain why {example2}.",
            "Textbooks usually introduce {topic} in chapter {n2}, after the basics of {field}.",
        ],
        "records": [
            {"topic": "friction", "field": "physics", "fact": "friction is a force that opposes the sliding of two surfaces against each other", "example": "a book pushed across a table slowly comes to rest", "example2": "car tyres need grooves to grip a wet road", "quantity": "the friction force", "unit": "newtons"},
            {"topic": "gravity", "field": "physics", "fact": "every mass attracts every other mass, and the pull grows with mass and shrinks with distance", "example": "a dropped apple speeds up as it falls", "example2": "the Moon stays in orbit around the Earth", "quantity": "the acceleration of a falling ball", "unit": "metres per second squared"},
            {"topic": "momentum", "field": "physics", "fact": "momentum is mass times velocity and is conserved when no outside force acts", "example": "a small cart bounces back after hitting a heavier one", "example2": "a rifle recoils when it fires", "quantity": "the velocity of each cart", "unit": "metres per second"},
            {"topic": "electric current", "field": "physics", "fact": "current is the flow of electric charge, driven by a voltage through a conductor", "example": "a bulb lights only when the circuit is closed", "example2": "thin wires heat up when too much current flows", "quantity": "the current in the circuit", "unit": "amperes"},
            {"topic": "sound waves", "field": "physics", "fact": "sound is a vibration that travels through a medium as a pressure wave", "example": "thunder is heard a few seconds after the lightning", "example2": "there is no sound in the vacuum of space", "quantity": "the frequency of a tuning fork", "unit": "hertz"},
            {"topic": "oxidation", "field": "chemistry", "fact": "oxidation is the loss of electrons, often when a substance combines with oxygen", "example": "an iron nail left in water slowly rusts", "example2": "a cut apple turns brown in the air", "quantity": "the mass gained by the nail", "unit": "grams"},
            {"topic": "acids and bases", "field": "chemistry", "fact": "acids release hydrogen ions in water and bases accept them, and the pH scale compares their strength", "example": "vinegar fizzes when baking soda is added", "example2": "antacid tablets ease an upset stomach", "quantity": "the pH of each solution", "unit": "pH units"},
            {"topic": "catalysts", "field": "chemistry", "fact": "a catalyst speeds up a reaction without being used up itself", "example": "hydrogen peroxide foams quickly when yeast is added", "example2": "cars carry catalytic converters to clean exhaust gases", "quantity": "the volume of oxygen released", "unit": "millilitres"},
            {"topic": "chemical bonds", "field": "chemistry", "fact": "atoms join by sharing or transferring electrons to form more stable arrangements", "example": "table salt forms when sodium gives an electron to chlorine", "example2": "water molecules stick together in droplets", "quantity": "the melting point of each sample", "unit": "degrees Celsius"},
            {"topic": "photosynthesis", "field": "biology", "fact": "plants use light energy to turn carbon dioxide and water into sugar and oxygen", "example": "pond weed gives off bubbles of oxygen in bright light", "example2": "leaves are broad and flat to catch sunlight", "quantity": "the number of oxygen bubbles per minute", "unit": "bubbles per minute"},
            {"topic": "cell division", "field": "biology", "fact": "a cell copies its DNA and splits into two cells, which lets organisms grow and repair tissue", "example": "a cut on the skin heals over a few days", "example2": "onion root tips show many cells in the middle of dividing", "quantity": "the share of dividing cells", "unit": "percent"},
            {"topic": "natural selection", "field": "biology", "fact": "individuals with traits that suit their environment survive and reproduce more, so those traits spread", "example": "bacteria become resistant to an antibiotic over many generations", "example2": "island birds often have beaks shaped for the local food", "quantity": "the number of surviving colonies", "unit": "colonies"},
            {"topic": "enzymes", "field": "biology", "fact": "enzymes are proteins that speed up reactions in living things and work best at a certain temperature", "example": "saliva starts breaking down starch while you chew bread", "example2": "a high fever can be dangerous for the body", "quantity": "the time taken to digest the starch", "unit": "seconds"},
        ],
        "vocab": {
            "adj": ["simple", "careful", "classroom", "weekly", "hands-on"],
            "adj2": ["crude", "slow", "surprising", "controversial", "patient"],
            "lab": ["the Harwick Institute", "Northfield College", "the Lenmark Lab", "Braeside University"],
            "prop": ["spring", "marble", "ruler", "stopwatch", "beaker", "balloon", "magnet", "thermometer"],
        },
        "numbers": {"n1": (2, 95), "n2": (2, 14), "n3": (3, 10)},
    },
    "cooking": {
        "lead": "This {dish} is a {adj} meal that serves {serves}.",
        "templates": [
            "Start by chopping {n1} {veg} and set them aside.",
            "Heat {n2} tablespoons of {fat} in a {pan} over {heat} heat.",
            "Add the {veg2} and cook for {minutes} minutes, stirring now and then.",
            "Season with {spice} and a pinch of salt before tasting.",
            "Simmer until the sauce thickens, about {minutes2} minutes.",
            "Serve the {dish} warm with {side}.",
            "Leftovers keep in the fridge for up to {days} days.",
            "If you prefer a milder flavour, use half the {spice}.",
            "Stir in {cups} cups of {liquid} and bring it to a gentle boil.",
            "A handful of fresh {herb} on top adds colour.",
        ],
        "vocab": {
            "dish": ["vegetable curry", "tomato soup", "lentil stew", "mushroom risotto", "chicken stir-fry", "bean chili", "potato gratin", "noodle bowl"],
            "adj": ["quick", "hearty", "budget-friendly", "cozy", "simple"],
            "veg": ["onions", "carrots", "peppers", "courgettes", "potatoes", "tomatoes", "leeks"],
            "fat": ["olive oil", "butter", "sunflower oil", "ghee"],
            "pan": ["deep frying pan", "heavy pot", "wok", "cast-iron skillet"],
            "heat": ["medium", "low", "medium-high"],
            "spice": ["cumin", "smoked paprika", "black pepper", "turmeric", "chili flakes", "garam masala"],
            "side": ["crusty bread", "steamed rice", "a green salad", "flatbread", "roasted potatoes"],
            "liquid": ["vegetable stock", "water", "coconut milk", "chicken stock"],
            "herb": ["parsley", "coriander", "basil", "chives", "mint"],
        },
        "numbers": {"serves": (2, 8), "n1": (2, 6), "n2": (2, 4), "cups": (2, 5), "minutes": (3, 12), "minutes2": (10, 40), "days": (2, 5)},
    },
    "sports": {
        "lead": "{team} beat {team2} {s1}-{s2} in their {sport} match on {day}.",
        "templates": [
            "{player} opened the scoring in the {period} and finished with {stat} {unit}.",
            "The game was level until late in the {period}, when {team} pulled ahead.",
            "Coach {coach} praised the defence and said the squad had trained hard all week.",
            "{team2} had chances but missed {miss} attempts from close range.",
            "The win moves {team} to {rank} place in the {league} standings.",
            "Next, {team} travel to face {team3} on {day2}.",
            "A crowd of {crowd} filled {stadium}, the biggest attendance this season.",
            "{player2} left the field injured and will be assessed on {day2}.",
            "Fans of {team2} will hope for a better result against {team3}.",
        ],
        "records": [
            {"sport": "football", "period": "second half", "unit": "goals", "lo": 0, "hi": 5, "stat_hi": 3},
            {"sport": "basketball", "period": "fourth quarter", "unit": "points", "lo": 78, "hi": 121, "stat_hi": 38},
            {"sport": "rugby", "period": "second half", "unit": "tries", "lo": 6, "hi": 41, "stat_hi": 3},
            {"sport": "hockey", "period": "third period", "unit": "goals", "lo": 0, "hi": 6, "stat_hi": 3},
        ],
        "vocab": {
            "team": ["Riverton Rovers", "Ashford Falcons", "Port Ellis United", "Kessing City", "Millbrook Wolves", "Dunmore Harriers", "Valmora Athletic"],
            "player": ["Marta Quill", "Jonas Reyes", "Tomi Adeyemi", "Lena Hartmann", "Sam Okafor", "Priya Nair", "Ivo Petrov"],
            "coach": ["Garner", "Delacroix", "Mbeki", "Sorensen", "Ortega"],
            "day": ["Saturday", "Sunday", "Wednesday", "Friday"],
            "league": ["Northern", "Premier", "Coastal", "Central"],
            "stadium": ["Harbour Park", "the Old Mill Ground", "Kingsway Arena", "Elm Road"],
            "rank": ["first", "second", "third", "fourth", "fifth"],
        },
        "numbers": {"miss": (2, 9), "crowd": (3000, 48000)},
    },
    "finance": {
        "lead": "Shares of {company} {moved} {pct}% on {day} after the firm reported {result} quarterly earnings.",
        "templates": [
            "The {index} closed at {level}, {direction} {pct2}% for the session.",
            "Analysts at {bank} said demand for {product} remained {demand}.",
            "Revenue reached ${rev} million, compared with ${rev0} million a year earlier.",
            "Bond yields {yields} as investors weighed the central bank's next rate decision.",
            "The {currency} {moved2} against the dollar in afternoon trading.",
            "{company} said it expects margins to {outlook} next year.",
            "Trading volume was {volume} million shares, above the {window}-day average.",
            "Rivals {company2} and {company3} also traded {direction2} on the news.",
        ],
        "vocab": {
            "company": ["Norvell Systems", "Castor Foods", "Brightwave Energy", "Talbot Motors", "Quenby Pharma", "Ostrava Mining", "Helix Retail"],
            "moved": ["rose", "fell", "jumped", "slipped", "climbed", "dropped"],
            "result": ["stronger-than-expected", "weaker-than-expected", "record", "mixed", "flat"],
            "index": ["Meridian 100 index", "Broad Market index", "Tech 50 index", "Small Cap index"],
            "direction": ["up", "down"],
            "bank": ["Calloway Partners", "Fenwick Securities", "Ridgeline Capital", "Thorne & Vale"],
            "product": ["electric vehicles", "cloud services", "generic drugs", "packaged snacks", "copper", "home appliances"],
            "demand": ["robust", "soft", "uneven", "resilient", "weak"],
            "yields": ["edged higher", "eased", "were little changed", "rose sharply"],
            "currency": ["euro", "yen", "pound", "franc", "krona"],
            "outlook": ["improve", "narrow slightly", "stay stable", "recover"],
            "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
        },
        "numbers": {"pct": (0.4, 14.0, "f"), "pct2": (0.1, 2.5, "f"), "level": (2100, 9800), "rev": (120, 9400),
                    "volume": (2, 60), "window": (10, 90)},
    },
    "travel": {
        "lead": "{city} is best visited in {season}, when the weather is {weather}.",
        "templates": [
            "From the main station, a {transport} ride of about {minutes} minutes takes you to the old town.",
            "Travelers should not miss the {sight}, which opened to visitors in {year}.",
            "A room in a {lodging} near the center costs around {price} euros per night.",
            "Local markets sell {food} and handmade {craft}.",
            "Pack {item} because the {terrain} trails can be {condition}.",
            "Most museums close on {day}, so plan your itinerary accordingly.",
            "A day trip to {city2} is easy by {transport2}.",
            "Ask at the tourist office for a map of the {sight2}.",
        ],
        "vocab": {
            "city": ["Valmora", "Port Ellis", "Kessingford", "Arlen Bay", "Tirrasol", "Oskarholm", "Lindqvist Harbour"],
            "season": ["late spring", "early autumn", "midsummer", "the dry season"],
            "weather": ["mild and sunny", "warm but breezy", "cool and clear", "pleasantly dry"],
            "transport": ["tram", "bus", "ferry", "funicular", "bicycle"],
            "sight": ["cliffside lighthouse", "old cathedral", "botanical garden", "harbour fortress", "salt museum", "clock tower"],
            "lodging": ["guesthouse", "boutique hotel", "hostel", "family-run inn"],
            "food": ["smoked fish", "fresh figs", "sheep cheese", "spiced pastries", "olives"],
            "craft": ["pottery", "woven baskets", "leather sandals", "glass beads"],
            "item": ["sturdy shoes", "a rain jacket", "sunscreen", "a warm layer"],
            "terrain": ["coastal", "mountain", "forest", "river"],
            "condition": ["muddy after rain", "steep and rocky", "crowded at noon", "slippery in places"],
            "day": ["Monday", "Tuesday", "Sunday"],
        },
        "numbers": {"minutes": (5, 45), "year": (1820, 2015), "price": (35, 240)},
    },
    "software": {
        "lead": "This snippet shows how to {task} in {lang}.",
        "templates": [
            "It makes a single pass over the input, so it runs in linear time.",
            "A common mistake is to {mistake}, which leads to {bug}.",
            "Before merging, run the tests with {tool} and check the coverage report.",
            "Edge cases such as empty input should be covered by a unit test.",
            "You can rewrite it later with {feature} if performance matters.",
            "Version {major}.{minor} of the project added type hints to this API.",
            "Keep names like {name} descriptive so reviewers can follow the logic.",
            "It was tried on {os} with a sample of {n} records.",
            "A reviewer suggested logging the result instead of printing it.",
            "Add a short docstring saying what {name} returns and when it fails.",
            "For very large inputs, {feature} is usually the first thing to try.",
            "The same pattern appears in many {lang} code bases.",
        ],
        "records": [
            {"lang": "Python", "task": "compute a weighted total of a list", "code": "def {name}({var}, weight={k}):\n    total = 0\n    for {elem} in {var}:\n        total += {elem} * weight\n    return total"},
            {"lang": "Python", "task": "count how often each item appears", "code": "def {name}({var}):\n    counts = {{}}\n    for {elem} in {var}:\n        counts[{elem}] = counts.get({elem}, 0) + 1\n    return counts"},
            {"lang": "Python", "task": "sort records by a field", "code": "def {name}({var}):\n    # newest first, ties broken by name\n    return sorted({var}, key=lambda r: (-r[\"{col}\"], r[\"name\"]))"},
            {"lang": "Python", "task": "retry a flaky call a few times", "code": "import time\n\nfor attempt in range({k}):\n    try:\n        result = {name}()\n        break\n    except ConnectionError:\n        time.sleep(2 ** attempt)"},
            {"lang": "Bash", "task": "count matching lines across files", "code": "# the {k} logs that mention {col} most often\ngrep -c \"{col}\" *.log | sort -t: -k2 -nr | head -n {k}"},
            {"lang": "Python", "task": "read the non-empty lines of a file", "code": "with open(\"{file}\") as fh:\n    lines = [line.strip() for line in fh if line.strip()]\nprint(len(lines), \"lines\")"},
            {"lang": "Python", "task": "wrap a value in a small class", "code": "class {cls}:\n    def __init__(self, size):\n        self.size = size\n\n    def {name}(self):\n        return self.size * {k}"},
            {"lang": "SQL", "task": "find the most common values in a column", "code": "SELECT {col}, COUNT(*) AS n\nFROM {table}\nGROUP BY {col}\nORDER BY n DESC\nLIMIT {k};"},
            {"lang": "JavaScript", "task": "filter an array by a threshold", "code": "function {name}({var}) {{\n  return {var}.filter(({elem}) => {elem} > {k});\n}}"},
            {"lang": "SQL", "task": "join two tables and total a column", "code": "SELECT u.{col}, SUM(o.amount) AS total\nFROM {table} AS o\nJOIN users AS u ON u.id = o.user_id\nGROUP BY u.{col};"},
        ],
        "vocab": {
            "name": ["scaled_sum", "tally", "summarize", "total_cost", "grow", "keep_large", "collect", "fetch_page", "rank"],
            "var": ["items", "values", "records", "rows", "entries", "batch"],
            "elem": ["item", "x", "value", "entry", "v"],
            "os": ["Linux", "macOS", "Windows", "a small cloud VM"],
            "cls": ["Bucket", "Counter", "Box", "Panel"],
            "file": ["data.txt", "names.csv", "log.txt", "notes.md"],
            "col": ["country", "status", "category", "author"],
            "table": ["orders", "users", "events", "posts"],
            "mistake": ["modify a list while looping over it", "compare floats with ==", "forget to close the file", "shadow a built-in name"],
            "bug": ["skipped elements", "flaky results", "leaked file handles", "confusing errors"],
            "tool": ["pytest", "the CI pipeline", "a pre-commit hook"],
            "feature": ["a generator", "a dictionary comprehension", "vectorized numpy code", "an index on the column"],
        },
        "numbers": {"k": (2, 20), "major": (1, 4), "minor": (0, 12), "n": (50, 90000)},
    },
    "history": {
        "lead": "In {year}, the {polity} {event}.",
        "templates": [
            "Historians describe the {era} as a period of {theme}.",
            "The {charter} of {year2} {effect}.",
            "Trade along the {route} brought {goods} to the markets of {city}.",
            "Chroniclers of the time recorded that {ruler} {act}.",
            "Archaeologists have since found {artifact} near {city2}, which supports this account.",
            "By the end of the century, {change}.",
            "These changes shaped how later generations understood {theme2}.",
            "Rivalry with the {polity2} lasted for {n1} years.",
        ],
        "vocab": {
            "polity": ["Kingdom of Aldera", "Merovian League", "Republic of Sarn", "Duchy of Kell", "Tessaran Empire"],
            "event": ["signed a peace treaty with its northern neighbours", "moved its capital to the coast", "suffered a long famine", "expanded its navy", "reformed its coinage"],
            "era": ["early river period", "age of the merchant guilds", "long peace", "frontier wars"],
            "theme": ["growing trade", "political unrest", "religious reform", "rapid town building", "shifting alliances"],
            "charter": ["Charter of Ostmark", "Harbour Edict", "Treaty of Linn", "Great Survey"],
            "effect": ["limited the power of the nobles", "opened the ports to foreign ships", "set out the first written laws", "recorded every farm and mill"],
            "route": ["river road", "salt road", "northern sea lanes", "mountain passes"],
            "goods": ["silk and spices", "timber and furs", "salt and iron", "wine and grain"],
            "city": ["Varenne", "Kolby", "Istrel", "Marrow Ford", "Dunhal"],
            "ruler": ["Queen Isolde II", "King Berant", "Duke Oswin", "Empress Tamsa"],
            "act": ["ordered new roads to be built", "raised taxes on grain", "founded a school for scribes", "pardoned the rebel lords"],
            "artifact": ["coins bearing the royal seal", "the remains of a timber warehouse", "clay tablets listing cargo", "a buried city wall"],
            "change": ["most towns had their own markets", "the old noble families had lost their lands", "the population had nearly doubled", "the capital had become a centre of learning"],
        },
        "numbers": {"year": (880, 1650), "year2": (880, 1650), "n1": (12, 140)},
    },
}

# Arithmetic problems are built in code rather than from flat templates, so that
# every stated answer is correct. Each builder returns (setup, question, steps, answer).
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jamal", "Kira", "Leo"]
ITEMS = ["apples", "pencils", "marbles", "stickers", "cookies", "books", "shells", "cards", "stamps", "beads", "crayons", "plums"]


def _p_multiply(r):
    n, a, b, it = r.choice(NAMES), r.randint(3, 12), r.randint(4, 15), r.choice(ITEMS)
    return ([f"{n} buys {a} boxes of {it}, and each box holds {b} {it}."], f"How many {it} does {n} have?",
            [f"{a} boxes times {b} {it} per box gives {a * b} {it}."], a * b)


def _p_add_sub(r):
    n, f, it = *r.sample(NAMES, 2), r.choice(ITEMS)
    a, b, c = r.randint(20, 60), r.randint(3, 19), r.randint(2, 30)
    return ([f"{n} had {a} {it}.", f"{n} gave {b} to {f} and then found {c} more."], f"How many {it} does {n} have now?",
            [f"After giving some away, {n} has {a} - {b} = {a - b}.", f"Adding the new ones gives {a - b} + {c} = {a - b + c}."], a - b + c)


def _p_divide(r):
    n, k, each, it = r.choice(NAMES), r.randint(2, 9), r.randint(3, 12), r.choice(ITEMS)
    group = r.choice(["friends", "classmates", "cousins", "teammates", "bags", "boxes"])
    return ([f"{n} has {k * each} {it} and splits them equally among {k} {group}."], f"How many {it} go to each of the {group}?",
            [f"Dividing {k * each} by {k} gives {each}.", f"To check, {k} x {each} = {k * each}."], each)


def _p_change(r):
    n, p, q = r.choice(NAMES), r.randint(2, 9), r.randint(2, 6)
    bill = next(b for b in (20, 50, 100) if b > p * q)
    return ([f"A notebook costs ${p}.", f"{n} buys {q} notebooks and pays with a ${bill} note."], f"How much change does {n} get?",
            [f"The notebooks cost {q} x ${p} = ${p * q}.", f"The change is ${bill} - ${p * q} = ${bill - p * q}."], bill - p * q)


def _p_distance(r):
    v, t = r.choice([40, 45, 50, 60, 75, 80, 90]), r.randint(2, 6)
    ride = r.choice(["A train", "A bus", "A car", "A ferry", "A delivery van"])
    return ([f"{ride} travels at {v} kilometres per hour for {t} hours."], "How far does it travel?",
            [f"Distance is speed times time, so {v} x {t} = {v * t} kilometres."], v * t)


def _p_discount(r):
    p, d = 20 * r.randint(2, 15), r.choice([10, 20, 25, 50])
    off = p * d // 100
    return ([f"A jacket costs ${p}.", f"The shop offers a {d}% discount."], "What is the sale price?",
            [f"The discount is {d}% of ${p}, which is ${off}.", f"The sale price is ${p} - ${off} = ${p - off}."], p - off)


PROBLEMS = [_p_multiply, _p_add_sub, _p_divide, _p_change, _p_distance, _p_discount]
ARITH_INTROS = ["Here is a worked example from a grade {g} maths lesson.", "Word problems like this one appear on many grade {g} worksheets.",
                "Let us solve a typical grade {g} word problem step by step.", "Our grade {g} class practised this kind of question today.",
                "Teachers often use problems like the next one in grade {g}.", "This grade {g} homework question tests one operation at a time."]
ARITH_TIPS = ["A good habit is to check the answer by working backwards.", "Underline the numbers in the problem before you start.",
              "Writing the units next to each number helps avoid mistakes.", "Estimate first, then compare the estimate with the exact result.",
              "Drawing a quick picture can make the operation clear.", "Read the question twice to see exactly what is being asked.",
              "Keywords such as each, total and left often hint at the operation."]

# Multiple-choice science facts for the science_qa targets: (question, answer, distractors, explanation).
SCIENCE_QA = [
    ("Which gas do plants take in for photosynthesis?", "carbon dioxide", ["oxygen", "nitrogen", "helium"], "Plants turn carbon dioxide and water into sugar."),
    ("What force slows a book sliding across a table?", "friction", ["magnetism", "buoyancy", "tension"], "Friction opposes sliding between surfaces."),
    ("What is the SI unit of electric current?", "ampere", ["volt", "ohm", "watt"], "Current is measured in amperes."),
    ("What is formed when iron rusts?", "iron oxide", ["iron chloride", "pure iron", "carbon dioxide"], "Rusting is the oxidation of iron."),
    ("What does a catalyst do to a reaction?", "it speeds it up without being used up", ["it stops it", "it is consumed", "it lowers the yield"], "Catalysts lower the energy barrier."),
    ("Sound cannot travel through which of these?", "a vacuum", ["water", "steel", "air"], "Sound needs a medium to carry its vibrations."),
    ("What is momentum equal to?", "mass times velocity", ["mass times height", "force times distance", "speed divided by time"], "Momentum is p = m v."),
    ("A solution with pH 2 is best described as what?", "strongly acidic", ["neutral", "strongly basic", "weakly basic"], "Low pH means many hydrogen ions."),
    ("Which process lets a cut on the skin heal?", "cell division", ["evaporation", "photosynthesis", "condensation"], "New cells are made by division."),
    ("Enzymes are mostly made of what?", "proteins", ["fats", "minerals", "sugars"], "Enzymes are folded protein chains."),
    ("Which idea explains bacteria becoming resistant to antibiotics?", "natural selection", ["erosion", "inertia", "diffusion"], "Resistant bacteria survive and multiply."),
    ("What holds the Moon in orbit around the Earth?", "gravity", ["friction", "air pressure", "magnetism"], "Gravity pulls the Moon toward the Earth."),
    ("What type of bond forms when sodium gives an electron to chlorine?", "an ionic bond", ["a covalent bond", "a hydrogen bond", "a metallic bond"], "Electron transfer makes ions."),
    ("Which glands make the saliva that starts digesting starch?", "the salivary glands", ["the adrenal glands", "the sweat glands", "the thyroid gland"], "Saliva contains the enzyme amylase."),
]


def _fill(rng: random.Random, spec: dict) -> dict:
    """Bind every slot of one document: a record, vocab draws, and numbers."""
    b = dict(rng.choice(spec["records"])) if spec.get("records") else {}
    for key, words in spec.get("vocab", {}).items():
        for suffix, word in zip(("", "2", "3"), rng.sample(words, min(3, len(words)))):
            b[key + suffix] = word
    for key, rng_spec in spec.get("numbers", {}).items():
        b[key] = round(rng.uniform(*rng_spec[:2]), 1) if len(rng_spec) == 3 else rng.randint(*rng_spec)
    if "field" in b:
        b["Field"] = b["field"].capitalize()
    if "hi" in b:  # sports: a winner's and a loser's score in the sport's range
        b["s1"] = rng.randint(b["lo"] + 1, b["hi"])
        b["s2"] = rng.randint(b["lo"], b["s1"] - 1)
        b["stat"] = rng.randint(1, min(b["stat_hi"], max(1, b["s1"])))
    if "rev" in b:
        b["rev0"] = max(1, round(b["rev"] * rng.uniform(0.7, 1.3)))
    if "code" in b:
        b["code"] = b["code"].format_map(b)
    return b


def _template_doc(rng: random.Random, spec: dict) -> list[str]:
    """2-8 sentences: the lead, then distinct templates until long enough."""
    b = _fill(rng, spec)
    pool = rng.sample(spec["templates"], len(spec["templates"]))
    out = [spec["lead"].format_map(b)]
    if "code" in b:
        out.append(b["code"])
    want = rng.randint(2, 8)

    def prose_words() -> int:  # a code block does not count towards the length
        return sum(len(s.split()) for s in out if "\n" not in s)

    while pool and len(out) < 8 and (len(out) < want or prose_words() < MIN_WORDS):
        out.append(pool.pop().format_map(b))
    return out


def _arith_doc(rng: random.Random) -> list[str]:
    """A worked word problem written as a lesson, with an intro and a tip."""
    setup, question, steps, answer = rng.choice(PROBLEMS)(rng)
    out = [rng.choice(ARITH_INTROS).format(g=rng.randint(2, 6))] + setup + [question] + steps
    out.append(f"So the answer is {answer}.")
    if len(out) < 8:
        out.append(rng.choice(ARITH_TIPS))
    return out


def _join(sentences: list[str]) -> str:
    """Prose joined by spaces; multi-line code blocks set off by blank lines."""
    parts = [sentences[0]]
    for prev, s in zip(sentences, sentences[1:]):
        parts += ["\n\n" if "\n" in prev or "\n" in s else " ", s]
    return "".join(parts)


def _noisy(rng: random.Random, sentences: list[str]) -> tuple[str, float]:
    """Join sentences; some documents get boilerplate and a low quality score."""
    if rng.random() < NOISE_RATE:
        junk = rng.sample(BOILERPLATE, rng.randint(1, 2))
        sentences = junk[:1] + sentences + junk[1:] if rng.random() < 0.5 else sentences + junk
        return _join(sentences), round(rng.uniform(0.05, 0.4), 3)
    return _join(sentences), round(rng.uniform(0.65, 1.0), 3)


def make_documents(docs: int, seed: int) -> list[dict]:
    """Documents balanced across domains, in a seeded shuffled order."""
    rng = random.Random(f"nagindex-demo-corpus-{seed}")
    domains = sorted([*DOMAINS, "arithmetic"])
    counters = dict.fromkeys(domains, 0)
    out = []
    for i in range(docs):
        domain = domains[i % len(domains)]
        sentences = _arith_doc(rng) if domain == "arithmetic" else _template_doc(rng, DOMAINS[domain])
        text, quality = _noisy(rng, sentences)
        out.append({"id": f"{domain}-{counters[domain]:04d}", "text": text, "domain": domain, "quality": quality})
        counters[domain] += 1
    rng.shuffle(out)
    return out


def make_targets(seed: int) -> list[dict]:
    """Target examples for science_qa and word_problems, in Q/A form (unlike the corpus)."""
    rng = random.Random(f"nagindex-demo-targets-{seed}")
    out = []
    for q, answer, wrong, why in rng.sample(SCIENCE_QA, N_TARGETS):
        choices = rng.sample([answer, *wrong], 4)
        lines = [f"Question: {q}"] + [f"{string.ascii_uppercase[i]}) {c}" for i, c in enumerate(choices)]
        letter = string.ascii_uppercase[choices.index(answer)]
        lines.append(f"Answer: {letter}) {answer}. {why}")
        out.append({"text": "\n".join(lines), "target": "science_qa"})
    for i in range(N_TARGETS):
        setup, question, steps, answer = PROBLEMS[i % len(PROBLEMS)](rng)
        text = f"Question: {' '.join(setup)} {question}\nAnswer: {' '.join(steps)} The answer is {answer}."
        out.append({"text": text, "target": "word_problems"})
    return out


def _jsonl_bytes(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def make_demo(out_dir, docs: int = 400, seed: int = 0) -> dict:
    """Write ``corpus/`` (JSONL, gzipped JSONL, Parquet, notes/*.txt) and ``targets.jsonl``.

    Files are overwritten in place; stale note files from an earlier run with
    another seed are removed so that the corpus holds exactly ``docs`` documents.
    """
    if docs < N_NOTES + 3 * len(DOMAINS):
        raise ValueError(f"docs must be at least {N_NOTES + 3 * len(DOMAINS)}, got {docs}")
    out = Path(out_dir)
    corpus, notes = out / "corpus", out / "corpus" / "notes"
    notes.mkdir(parents=True, exist_ok=True)
    for old in notes.glob("*.txt"):
        if re.fullmatch(r"[a-z]+-\d{4}\.txt", old.name):
            old.unlink()

    records = make_documents(docs, seed)
    rest, note_docs = records[:-N_NOTES], records[-N_NOTES:]
    third = len(rest) // 3
    parts = [rest[:third], rest[third:2 * third], rest[2 * third:]]
    files = {}

    path = corpus / "web-00.jsonl"
    path.write_bytes(_jsonl_bytes(parts[0]))
    files[str(path)] = len(parts[0])

    path = corpus / "web-01.jsonl.gz"
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(_jsonl_bytes(parts[1]))
    files[str(path)] = len(parts[1])

    path = corpus / "web-02.parquet"
    table = pa.table({
        "id": pa.array([r["id"] for r in parts[2]], pa.string()),
        "text": pa.array([r["text"] for r in parts[2]], pa.string()),
        "domain": pa.array([r["domain"] for r in parts[2]], pa.string()),
        "quality": pa.array([r["quality"] for r in parts[2]], pa.float64()),
    })
    pq.write_table(table, path, compression="snappy", row_group_size=1024, version="2.6",
                   use_dictionary=False, write_statistics=False, store_schema=False)
    files[str(path)] = len(parts[2])

    for r in note_docs:
        path = notes / f"{r['id']}.txt"
        path.write_text(r["text"] + "\n", encoding="utf-8")
        files[str(path)] = 1

    targets = make_targets(seed)
    targets_path = out / "targets.jsonl"
    targets_path.write_bytes(_jsonl_bytes(targets))

    domains: dict[str, int] = {}
    for r in records:
        domains[r["domain"]] = domains.get(r["domain"], 0) + 1
    tasks: dict[str, int] = {}
    for t in targets:
        tasks[t["target"]] = tasks.get(t["target"], 0) + 1
    return {"docs": len(records), "seed": seed, "domains": dict(sorted(domains.items())), "targets": tasks,
            "corpus_dir": str(corpus), "targets_path": str(targets_path), "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the built-in nagindex demo corpus and targets.")
    parser.add_argument("out_dir")
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(make_demo(args.out_dir, docs=args.docs, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
