"""A synthetic news corpus with known topics, and queries labelled by topic.

Each article is written about one of TOPICS from that topic's own words, set in generic
news sentences and named after people and places shared by every topic (so articles that
share a name are not thereby about the same thing). Each topic also has queries of three
classes, written by hand:

- `words`: words the topic's articles use (what keyword search is for);
- `paraphrase`: the same subject in other words, none of which any article of the topic
  holds (checked when the corpus is built: `check_paraphrases`);
- `mixed`: one word of each.

An article is relevant to a query when it is about the query's topic. The labels come from
this generator, never from the search under test. Same seed, same corpus.
"""

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    words: tuple[str, ...]
    queries: dict[str, tuple[str, ...]]


def _topic(name: str, words: str, *, words_q: str, paraphrase: str, mixed: str) -> Topic:
    queries = {
        "words": tuple(q.strip() for q in words_q.split(";")),
        "paraphrase": tuple(q.strip() for q in paraphrase.split(";")),
        "mixed": tuple(q.strip() for q in mixed.split(";")),
    }
    return Topic(name, tuple(words.split()), queries)


TOPICS = (
    _topic(
        "budget",
        "chancellor treasury spending taxes deficit borrowing austerity fiscal revenue "
        "departments cuts allowance pensions welfare exchequer statement forecast inflation "
        "income duty levy surplus chancellors allocation funding",
        words_q="chancellor spending; treasury deficit; fiscal statement; tax cuts; "
        "borrowing forecast",
        paraphrase="government budget; public finances plan; national accounts; "
        "national expenditure; how ministers pay for public services",
        mixed="chancellor budget; spending plan; treasury finances",
    ),
    _topic(
        "football",
        "striker goalkeeper midfielder penalty league match goal stadium fans referee "
        "manager season club defender championship kick squad transfer premiership "
        "scored tournament cup pitch",
        words_q="striker penalty; goalkeeper match; league season; referee penalty; "
        "transfer striker",
        paraphrase="soccer game; footballers win trophy; soccer team coach; "
        "sport on grass with a ball; soccer",
        mixed="soccer striker; goalkeeper soccer; league soccer",
    ),
    _topic(
        "election",
        "ballot voters polling candidate campaign constituency turnout votes parliament "
        "opposition seats coalition majority manifesto elected candidates polls "
        "referendum democratic incumbent",
        words_q="voters ballot; polling turnout; campaign candidate; coalition seats; "
        "manifesto opposition",
        paraphrase="who won the vote; general vote results; race for prime minister; "
        "people choosing leaders; presidential race",
        mixed="voters race; ballot results; candidate race",
    ),
    _topic(
        "earthquake",
        "earthquake quake magnitude tremor aftershocks seismic epicentre rubble collapsed "
        "rescuers survivors buildings destroyed richter fault tsunami shaking debris "
        "collapse victims",
        words_q="earthquake magnitude; seismic tremor; rubble survivors; aftershocks "
        "buildings; tsunami quake",
        paraphrase="ground shook violently; natural disaster claims lives; houses toppled; "
        "disaster relief teams dig; tremblor",
        mixed="earthquake disaster; rubble dig; tremor disaster",
    ),
    _topic(
        "wildfire",
        "wildfire blaze flames firefighters evacuation acres forest smoke burned "
        "containment bushfire drought heatwave scorched helicopters embers hectares "
        "fire dry winds",
        words_q="wildfire evacuation; firefighters blaze; forest smoke; bushfire drought; "
        "flames acres",
        paraphrase="woods burning; people flee burning hills; trees ablaze across region; "
        "inferno in countryside; conflagration",
        mixed="wildfire countryside; blaze woods; firefighters woods",
    ),
    _topic(
        "vaccine",
        "vaccine vaccination doses jab immunisation trial antibodies efficacy virus "
        "infection booster clinical regulator approval pharmaceutical immunity injections "
        "pandemic outbreak jabs",
        words_q="vaccine doses; booster jab; clinical trial; immunisation efficacy; "
        "vaccination pandemic",
        paraphrase="shots against disease; inoculation programme; protect people from "
        "flu; medicine to prevent illness; inoculate children",
        mixed="vaccine inoculation; booster shots; jab programme",
    ),
    _topic(
        "stocks",
        "shares stocks investors markets index trading equities dow nasdaq ftse rally "
        "selloff traders earnings dividends bonds exchange prices gains losses brokers",
        words_q="shares investors; stocks rally; markets selloff; equities trading; ftse index",
        paraphrase="wall street slump; financial crash; bourses tumble in panic; "
        "financial turmoil deepens; financial panic",
        mixed="shares crash; stocks plunge; investors panic",
    ),
    _topic(
        "climate",
        "emissions carbon climate warming greenhouse temperatures renewable fossil fuels "
        "coal summit pledge targets net zero agreement gases sea levels glaciers",
        words_q="carbon emissions; climate summit; greenhouse gases; fossil fuels; "
        "renewable targets",
        paraphrase="planet getting hotter; global heating; environment treaty talks; "
        "dirty energy pollution; heating of the earth",
        mixed="carbon pollution; climate treaty; emissions pollution",
    ),
    _topic(
        "space",
        "rocket launch astronauts orbit nasa spacecraft satellite moon mars mission "
        "lunar capsule payload crew station telescope probe launched orbital",
        words_q="rocket launch; astronauts orbit; nasa mission; lunar spacecraft; "
        "satellite payload",
        paraphrase="going to the stars; cosmos exploration; flight beyond earth; "
        "journey into outer heavens; cosmonauts",
        mixed="rocket cosmos; nasa exploration; moon exploration",
    ),
    _topic(
        "crime",
        "police arrested suspect murder detectives charged investigation stabbing "
        "custody prosecutors court trial jury sentenced robbery victim officers "
        "killing homicide",
        words_q="police arrested; murder suspect; detectives investigation; jury trial; "
        "robbery charged",
        paraphrase="man locked up for fatal attack; law enforcement probe; someone was slain; "
        "accused went before judge; slaying",
        mixed="police slaying; murder probe; suspect held",
    ),
    _topic(
        "tech",
        "smartphone app software users privacy data technology company apple google "
        "platform online internet devices chips update launch iphone digital",
        words_q="smartphone app; software update; privacy data; internet platform; iphone launch",
        paraphrase="mobile handset maker; computing giant unveils gadget; silicon valley "
        "firm; new phone; gadget",
        mixed="smartphone gadget; software gadget; app handset",
    ),
    _topic(
        "housing",
        "house prices mortgage homes property rents landlords tenants buyers housing "
        "agents surveyors affordable homeowners rental deposit lenders homebuyers dwellings",
        words_q="house prices; mortgage lenders; rents tenants; affordable housing; "
        "property buyers",
        paraphrase="cost of a place to live; real estate boom; apartments too expensive; "
        "flat rent costs; real estate",
        mixed="mortgage real estate; housing costs; rents apartments",
    ),
    _topic(
        "health",
        "hospital patients nurses doctors waiting surgery treatment nhs ward beds "
        "emergency care staff clinics outpatients operations shortages health",
        words_q="hospital patients; nurses doctors; waiting surgery; nhs beds; emergency care",
        paraphrase="infirmary queues grow; physicians overwhelmed; sick people wait; "
        "medics strike; infirmary",
        mixed="hospital infirmary; nurses medics; patients queues",
    ),
    _topic(
        "flood",
        "flooding floods rain river levels storm homes evacuated torrential rainfall "
        "burst banks swollen tides inundated sandbags downpour deluge",
        words_q="flooding river; torrential rain; floods evacuated; rainfall storm; burst banks",
        paraphrase="towns under water; monsoon washes away villages; streets "
        "submerged; high water damage; submerged",
        mixed="flooding submerged; rain submerged; river monsoon",
    ),
    _topic(
        "trade",
        "tariffs trade exports imports deal negotiators customs goods quotas wto "
        "agreement barriers duties partners surplus commerce exporters",
        words_q="tariffs trade; exports imports; trade deal; customs barriers; wto negotiators",
        paraphrase="border taxes on products; protectionism row; shipping products abroad "
        "costlier; economic war between nations; protectionism",
        mixed="tariffs protectionism; trade row; exports protectionism",
    ),
    _topic(
        "music",
        "album band concert singer songs tour chart festival guitar fans stage "
        "rapper record grammy lyrics gig orchestra",
        words_q="album chart; band tour; concert singer; festival stage; grammy record",
        paraphrase="pop star performs live; new tunes released; musicians perform; "
        "hit single; vocalist",
        mixed="album tunes; band musicians; concert vocalist",
    ),
    _topic(
        "weather",
        "snow blizzard cold temperatures freezing ice frost forecasters warnings winter "
        "icy roads gritters snowfall chill arctic",
        words_q="snow blizzard; freezing temperatures; icy roads; winter warnings; "
        "frost forecasters",
        paraphrase="wintry spell brings chaos; sub zero conditions; white out "
        "conditions; polar vortex; sleet",
        mixed="snow chaos; icy conditions; blizzard vortex",
    ),
    _topic(
        "strike",
        "strike unions workers walkout pay dispute industrial action picket wages "
        "ballot employers talks staff union members",
        words_q="strike unions; workers walkout; pay dispute; industrial action; picket wages",
        paraphrase="labourers down tools; labour stoppage; salary row halts services; stoppage",
        mixed="strike stoppage; unions salary; walkout stoppage",
    ),
    _topic(
        "migration",
        "migrants asylum refugees border boats crossing immigration seekers channel "
        "deportation camps smugglers detention visas",
        words_q="migrants boats; asylum seekers; border crossing; immigration detention; "
        "refugees camps",
        paraphrase="people fleeing war arrive; displaced families; newcomers seeking "
        "sanctuary; sanctuary",
        mixed="migrants sanctuary; asylum sanctuary; refugees displaced",
    ),
    _topic(
        "energy",
        "oil gas prices barrel opec diesel pipeline crude energy bills supply "
        "electricity drilling fuel output",
        words_q="oil prices; crude barrel; gas pipeline; energy bills; opec output",
        paraphrase="cost of heating homes; petroleum cartel; power costs soar; "
        "hydrocarbons; petroleum",
        mixed="oil petroleum; gas heating; energy hydrocarbons",
    ),
)
CLASSES = ("words", "paraphrase", "mixed")

_FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemi",
    "Luca",
    "Maya",
    "Nils",
    "Omar",
]
_LAST = [
    "Marlowe",
    "Okafor",
    "Lindqvist",
    "Haddad",
    "Ivanek",
    "Moreau",
    "Castellano",
    "Nakamura",
    "Brennan",
    "Adeyemi",
    "Kowalski",
    "Fitzgerald",
    "Dubois",
    "Varga",
    "Sorensen",
    "Mendoza",
    "Whitaker",
    "Oyelaran",
    "Takahashi",
    "Quinn",
]
# 300 people: as in the news, each is named in few articles, on any subject.
PEOPLE = [f"{first} {last}" for first in _FIRST for last in _LAST]
TOPIC_WORDS_PER_ARTICLE = 12  # an article uses some of its topic's words, not all
PLACES = [
    "Carrowmore",
    "Vellington",
    "Ostrava",
    "Harbury",
    "Kestrel",
    "Dunmere",
    "Ashcombe",
    "Valdora",
    "Pellham",
    "Brightwater",
    "Corvallis",
    "Eastmoor",
]

_FRAMES = (
    "{E} said the {w} and the {w} would dominate the coming weeks in {P}.",
    "Officials in {P} warned that {w} and {w} could worsen, according to {E}.",
    "The {w} came after months of {w}, {E} told reporters.",
    "Critics argued that the {w} ignored the {w} and the {w}.",
    "{E}, speaking in {P}, described the {w} as a turning point for {w}.",
    "Figures out on Tuesday showed {w} rising while {w} slipped.",
    "Many in {P} blamed the {w} for the {w}.",
    "{E} promised a review of the {w} and more {w}.",
    "The latest {w} follows a difficult year of {w} and {w}.",
    "Analysts expect {w} to remain the main concern, with {w} close behind.",
)
_FILLER = (
    "The announcement was made on Monday.",
    "A spokesperson declined to comment further.",
    "More details are expected later this week.",
    "The statement was issued shortly after midday.",
    "Reporters gathered outside the building in the afternoon.",
    "It was not immediately clear what would happen next.",
    "The full report runs to several hundred pages.",
    "Officials said the situation was being monitored closely.",
)
_TITLES = (
    "{W} and {w} in {P}",
    "{E} on {w} and {w}",
    "{W}: {w} as {w} grows",
    "{W} {w} worries {P}",
    "{E} warns over {w}",
)


@dataclass(frozen=True, slots=True)
class Article:
    article_id: int
    topic: int
    title: str
    content: str
    source_id: int

    def record(self) -> dict[str, object]:
        return {
            "article_id": self.article_id,
            "source_id": self.source_id,
            "title": self.title,
            "content": self.content,
        }


def _fill(frame: str, rng: random.Random, words: tuple[str, ...], people: list[str]) -> str:
    out = frame
    while "{w}" in out:
        out = out.replace("{w}", rng.choice(words), 1)
    if "{W}" in out:
        out = out.replace("{W}", rng.choice(words).capitalize(), 1)
    return out.replace("{E}", rng.choice(people)).replace("{P}", rng.choice(PLACES))


def articles(
    count: int, *, seed: int = 0, first_id: int = 1, sources: int = 5
) -> Iterator[Article]:
    """`count` articles, topics in turn, each 8-20 sentences (some of another topic), naming
    two people again and again."""
    rng = random.Random(seed)
    for n in range(count):
        topic = n % len(TOPICS)
        words = tuple(rng.sample(TOPICS[topic].words, TOPIC_WORDS_PER_ARTICLE))
        people = rng.sample(PEOPLE, 2)  # an article names two people, again and again
        sentences = []
        for _ in range(rng.randint(8, 20)):
            roll = rng.random()
            if roll < 0.65:
                sentences.append(_fill(rng.choice(_FRAMES), rng, words, people))
            elif roll < 0.9:
                sentences.append(rng.choice(_FILLER))
            else:  # a passing mention of another subject
                other = TOPICS[rng.randrange(len(TOPICS))].words
                sentences.append(_fill(rng.choice(_FRAMES), rng, other, people))
        title = _fill(rng.choice(_TITLES), rng, words, people)
        source_id = 1 + rng.randrange(sources)
        yield Article(first_id + n, topic, title, " ".join(sentences), source_id)


def _stems(text: str) -> set[str]:
    """Words cut to five letters: a rough stand-in for stemming (`budgets` is `budge`)."""
    return {w[:5] for w in WORD.findall(text.lower()) if len(w) > 2}


# Small words any query may share with any article: they carry no subject.
_STOP = _stems("the and for with from into was will are its has had who what how after of out")


def check_paraphrases() -> None:
    """Every paraphrase query shares no word with its topic's articles (AssertionError)."""
    shared_text = " ".join(_FRAMES + _FILLER + _TITLES + tuple(PEOPLE + PLACES))
    generic = _stems(shared_text.replace("{w}", " ").replace("{W}", " "))
    for topic in TOPICS:
        own = _stems(" ".join(topic.words)) | generic
        for query in topic.queries["paraphrase"]:
            common = (_stems(query) - _STOP) & own
            assert not common, f"{topic.name}: {query!r} shares {sorted(common)}"
