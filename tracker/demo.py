"""The demo centre: staff, six candidates at different stages and their evidence, built through the services.

Every record is made by the person who would make it in real life, through the same services the web forms and
the command line use, so the demo obeys every handbook rule. Service users appear only by initials.
"""
import math
import textwrap
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from io import BytesIO

from PIL import Image, ImageDraw, ImageFont
from sqlmodel import Session, col, select

from .audit import SYSTEM, Actor
from .errors import InvalidInput
from .models import Candidate, Evidence, Role, SampleItem, User
from .services import assessment, evidence, people, quality
from .storage import LocalStorage, store

DEMO_PASSWORD = "person-centred-demo"
DOMAIN = "riverside.example"
ADMIN_EMAIL = f"centre.admin@{DOMAIN}"
MAX_FILE = 5 * 1024 * 1024


# --- What the demo contains ------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoLogin:
    """One demo account: who it is, what it can do, and what to try with it."""

    email: str
    name: str
    roles: tuple[str, ...]
    hint: str


@dataclass(frozen=True)
class DemoCentre:
    """The demo accounts (all with the one demo password) and the candidates by stage (a to f)."""

    logins: tuple[DemoLogin, ...]
    candidates: dict[str, uuid.UUID] = field(default_factory=dict)
    password: str = DEMO_PASSWORD


def _email(local: str) -> str:
    """Return a demo email address (the .example domain never delivers mail)."""
    return f"{local}@{DOMAIN}"


STAFF = {
    "admin": DemoLogin(ADMIN_EMAIL, "Sarah Kendal", (Role.ADMINISTRATOR,),
                       "Check staff credentials: why Priya Nair may mark Unit 001 but not assess Unit 002."),
    "helen": DemoLogin(_email("helen.marsh"), "Helen Marsh", (Role.ASSESSOR,),
                       "Sign off Grace Whitfield's Unit 002 (ready); see why Aisha Rahman is not."),
    "daniel": DemoLogin(_email("daniel.osei"), "Daniel Osei", (Role.ASSESSOR, Role.IQA),
                        "Review Ben Hargreaves's waiting observation; as IQA, sample Helen Marsh's decisions."),
    "priya": DemoLogin(_email("priya.nair"), "Priya Nair", (Role.ASSESSOR,),
                       "Try to accept Ben Hargreaves's observation: refused, she may assess Unit 001 only."),
    "margaret": DemoLogin(_email("margaret.lowe"), "Margaret Lowe", (Role.IQA,),
                          "Read her review of Leah Campbell's signed-off unit; sample Tomasz Nowak's referred work."),
    "joanne": DemoLogin(_email("joanne.pryce"), "Joanne Pryce", (Role.EXPERT_WITNESS,),
                        "See the end of life care observation she recorded for Grace Whitfield."),
    "marcus": DemoLogin(_email("marcus.bell"), "Marcus Bell", (Role.WITNESS,),
                        "Read his signed testimony; try an observation and see why a witness cannot."),
}

# Assessing qualifications (code, years held) and occupational competence (level, area, evidence).
QUALIFICATIONS = {"helen": ("A1", 9), "daniel": ("QCF_L3_CAVA", 6), "priya": ("QCF_L3_AVRA", 4)}
COMPETENCE = {
    "helen": ("competent", "Domiciliary and community support for adults",
              "Registered manager of a home care service for nine years; trains staff in person-centred thinking."),
    "daniel": ("competent", "Residential and nursing care for older people",
               "Deputy manager of a nursing home for six years; leads its person-centred review programme."),
    "priya": ("knowledgeable", "Health and social care policy",
              "Teaches the principles of personalisation; has not worked in front-line care for over ten years."),
}
DEMO_SEED = 3002  # the demo sample's seed: an EQA can redraw it and get the same items
IQA_QUALIFICATIONS = {"daniel": "C_G_6317_AWARD", "margaret": "C_G_6317_CERTIFICATE"}
EXPERT_WITNESS = {
    "user": "joanne",
    "working_knowledge": "Completed the centre's Unit 002 briefing and two days' training in person-centred "
                         "thinking tools; uses one-page profiles with the hospice at home team.",
    "occupational_competence": "Registered nurse with fifteen years in palliative and end of life care; "
                               "clinical lead of St Aidan's Hospice at Home team.",
    "evaluating_role": "Clinical lead who supervises and appraises the hospice at home team's everyday practice",
}


@dataclass(frozen=True)
class CandidateSpec:
    """A demo candidate's registration, the people attached to them, and what to try."""

    stage: str
    login: DemoLogin
    number: str
    age: int  # on the demo's today
    birthday: tuple[int, int]  # month, day
    registered_days_ago: int
    workplace: str
    setting: str
    assessors: tuple[str, ...]
    iqa: str
    witnesses: tuple[str, ...] = ()
    expert_witnesses: tuple[str, ...] = ()


def _candidate(local: str, name: str, hint: str) -> DemoLogin:
    """Return a candidate's login."""
    return DemoLogin(_email(local), name, (Role.CANDIDATE,), hint)


CANDIDATES = (
    CandidateSpec("a", _candidate("nadia.okafor", "Nadia Okafor",
                                  "Just registered: upload a first work product and watch readiness change."),
                  "RCA0001", 30, (3, 12), 14, "Willow Court Care Home", "long_term_care", ("helen",), "daniel"),
    CandidateSpec("b", _candidate("grace.whitfield", "Grace Whitfield",
                                  "Every criterion met: readiness is clear, waiting for Helen Marsh to sign off."),
                  "RCA0002", 42, (7, 2), 330, "Brookside Community Support, home care team", "own_home",
                  ("helen",), "daniel", ("marcus",), ("joanne",)),
    CandidateSpec("c", _candidate("tomasz.nowak", "Tomasz Nowak",
                                  "Read the feedback on the referred decision-making agreement and resubmit it."),
                  "RCA0003", 35, (11, 30), 200, "Hollybank Care Home", "long_term_care", ("daniel",),
                  "margaret"),
    CandidateSpec("d", _candidate("aisha.rahman", "Aisha Rahman",
                                  "See why witness testimony does not count as the required observation."),
                  "RCA0004", 38, (5, 30), 150, "Brookside Community Support, recovery team", "recovery",
                  ("helen",), "daniel", ("marcus",)),
    CandidateSpec("e", _candidate("ben.hargreaves", "Ben Hargreaves",
                                  "Finish and submit the draft; the observation is waiting for the assessor."),
                  "RCA0005", 27, (1, 17), 60, "Castlegate Reablement Service", "reablement",
                  ("daniel", "priya"), "margaret"),
    CandidateSpec("f", _candidate("leah.campbell", "Leah Campbell",
                                  "Signed off: Unit 002 is locked and the Unit 001 assignment is passed."),
                  "RCA0006", 47, (9, 8), 420, "Maple House Care Home", "long_term_care", ("daniel", "priya"),
                  "margaret"),
)


@dataclass(frozen=True)
class Piece:
    """One piece of demo evidence: who records it, what it says, what it covers, and what became of it."""

    by: str  # a STAFF key, or "candidate"
    method: str
    days_ago: int
    title: str
    narrative: str
    criteria: dict[str, str]  # criterion code -> how this evidence covers it
    range_items: tuple[str, ...] = ()
    setting: str | None = None
    file: str | None = None  # a DOCUMENTS name, attached
    location: str | None = None  # a work product seen in place, and where the original is kept
    outcome: str = "accepted"  # accepted, referred, submitted (waiting) or draft
    feedback: str = ""


PORTFOLIOS: dict[str, tuple[Piece, ...]] = {
    "b": (
        Piece("helen", "observation", 210, "Relationship circle and communication chart with Mr K at home",
              "I observed Grace visiting Mr K in his own home to plan his support for the coming month. She used a "
              "relationship circle, letting Mr K place each person himself, and he put his bowls club friends closer "
              "than his care team. Grace checked his communication chart first and gave him time to answer, writing "
              "prompts down when his hearing aid whistled. They agreed he would phone the club captain himself, and "
              "she noted in his plan that he decides who is told about his health.",
              {"1.2": "Mr K led the circle and decided who is told about his health: choice, control and rights.",
               "2.1": "The relationship circle showed that his bowls club friends matter most to him.",
               "2.2": "Used his communication chart and written prompts so his voice led the plan.",
               "6.2": "Planned with him how to rebuild contact with the bowls club."},
              ("person-centred-tools-relationship-circle",
               "service-user-s-voice-choice-and-control-communication-charts", "develop-relationship-circle"),
              setting="own_home"),
        Piece("helen", "observation", 60, "Person-centred review with Mr K",
              "Grace facilitated Mr K's six-month person-centred review at his kitchen table, with his daughter on "
              "speakerphone and the reablement occupational therapist present. Beforehand she had helped him choose "
              "who to invite and write his own 'like and admire' list, so he opened the meeting himself. She recorded "
              "what was working and not working from his, his daughter's and the staff's perspectives on sheets he "
              "could see. The review ended with three actions, each with a name and a date, including moving his "
              "morning call to 9.30 so he can get to the bowls club.",
              {"1.3": "Agreed his outcomes at the review: staying at home and getting to the bowls club.",
               "4.2": "Helped him choose who to invite and prepare his own list, so he led the meeting.",
               "4.3": "Facilitated the review with the person-centred review questions.",
               "4.4": "Actions recorded with who, what and by when, in his words."},
              ("person-centred-practices-person-centred-review",
               "person-centred-practices-working-and-not-working-from-different-perspectives",
               "outcomes-social-participation",
               "actions-identifying-what-is-working-and-not-working-from-different-perspectives",
               "actions-ensuring-that-the-review-is-recorded-so-as-to-keep-the-service-user-s-views-at-the-centre",
               "actions-being-clear-who-will-do-what-by-when-to-achieve-the-outcome-and-the-implications-of-this-for-"
               "the-roles-of-staff-eg-and-a-personalised-rota"),
              setting="own_home"),
        Piece("joanne", "observation", 95, "End of life care at home: Mr D's decision-making agreement",
              "I observed Grace on a joint visit with the hospice at home team to Mr D, who is receiving end of life "
              "care at home. She used his decision-making agreement to check which decisions he still wants to make "
              "himself now that he tires quickly; he still decides when visitors come, and his wife decides about "
              "meals. Grace updated his one-page profile with what matters now: the window open, the cricket on the "
              "radio, and not being asked the same question twice. She kept the visit short and handed over to the "
              "nurse when he became breathless.",
              {"3.4": "Adapted her pace and the tools to a man receiving end of life care at home.",
               "4.1": "Updated his one-page profile to reflect what matters to him now.",
               "5.2": "Used his decision-making agreement to confirm who decides what."},
              ("contexts-people-receiving-end-of-life-care", "decision-making-decision-making-agreement-chart"),
              setting="end_of_life_care"),
        Piece("candidate", "work_product", 200, "One-page profile for Mr K",
              "I wrote this one-page profile with Mr K after our relationship circle session, using his own words for "
              "what people appreciate about him and what is important to him. The 'how best to support me' section "
              "comes from what his regular carers told me works, such as knocking twice and waiting, and tea before "
              "anything else. Mr K chose to keep it on his fridge so new carers read it first. I have used his "
              "initials only.",
              {"2.1": "What is important to Mr K, and his morning routine, in his own words.",
               "2.4": "A person-centred description of what matters to him and how to support him."},
              ("person-centred-tools-routines",
               "description-or-support-plan-what-is-important-to-the-service-user-person-centred-description",
               "description-or-support-plan-how-will-the-service-user-be-supported-person-centred-description"),
              file="one-page-profile-mr-k.png"),
        Piece("candidate", "work_product", 150, "Support plan and personalised rota for Mr K",
              "Mr K's support plan sets out what he wants to change, how his personal budget is spent and who does "
              "what. Using a doughnut, we separated what carers must do, like medication prompts, from where they use "
              "judgement and what is not their business, like his spending at the club. He now takes part of his "
              "budget as a direct payment to pay a friend from the club to drive him on Tuesdays, and we built a "
              "personalised rota around his club days. The action plan lists his next steps with dates.",
              {"2.4": "A detailed plan: his budget, how support is managed, and an action plan.",
               "3.1": "He took the actions himself: the direct payment, the driver and the rota.",
               "3.2": "The doughnut and the rota make clear who is responsible for what.",
               "3.3": "Person-centred practice within a direct payment arrangement."},
              ("description-or-support-plan-how-will-the-service-user-spend-any-personal-budget",
               "description-or-support-plan-how-will-support-be-managed", "description-or-support-plan-action-plan",
               "action-needed-developing-a-personalised-rota", "action-needed-connecting-with-the-community",
               "clarify-responsibilities-matching-tool-doughnut",
               "clarify-responsibilities-developing-a-personalised-rota",
               "support-arrangements-personal-budgets-as-a-direct-payment"),
              file="support-plan-mr-k.pdf"),
        Piece("helen", "work_product", 60, "Learning log for Mr K's care team (seen in place)",
              "I saw in place the learning log Grace set up for Mr K's care team; it is not uploaded because it "
              "identifies him. Entries over six weeks record what carers tried and what worked, such as his "
              "preference for a shower after breakfast, not before. Grace used the entries to rewrite the morning "
              "routine in his support plan, and the log shows her reviewing it with him every fortnight.",
              {"2.3": "The learning log is how the team learns about Mr K day to day.",
               "4.1": "Grace used the log to keep his support plan up to date with his choices."},
              ("person-centred-thinking-tools-learning-log", "person-centred-practices-learning-logs"),
              location="Mr K's care folder, kept in the kitchen of his home; seen on the visit of the date given"),
        Piece("helen", "professional_discussion", 40, "Professional discussion: values and positive risk taking",
              "We discussed how Grace supported Mr K to keep walking to the bowls club alone after a fall. She "
              "described the happy/safe grid they filled in together: walking alone made him happy but felt less "
              "safe, so they kept the happy and added the safe, with a pendant alarm and a route past the shop. She "
              "explained the values behind her practice and how the presumption of capacity meant the decision was "
              "his. She also reflected on stepping back more quickly with people in reablement as they regain skills.",
              {"1.1": "Named the values: independence and rights, coproduction, choice and control, inclusive "
                      "communities.",
               "3.4": "Explained how she adapts her practice for people receiving reablement.",
               "5.1": "The happy/safe grid: a person-centred approach to risk.",
               "5.2": "Shared decision-making grounded in the Mental Capacity Act."},
              ("contexts-people-receiving-reablement", "decision-making-mental-capacity-tool")),
        Piece("helen", "questioning", 40, "Questioning: widening Mr K's part in his community",
              "I asked Grace how Mr K could keep and widen his involvement in his community once his support hours "
              "reduce. She explained moving from presence to contribution: he now coaches new bowlers on Thursday "
              "mornings, which gives him a role rather than a seat. She described using a community map with him to "
              "find the library's reminiscence group, and using the 'five ways to well-being' at his next review.",
              {"6.1": "Uses the five ways to well-being to identify his outcomes.",
               "6.3": "From presence to contribution: coaching new bowlers; the community map."},
              ("well-being-connect", "well-being-give", "maintain-and-widen-presence-to-contribution",
               "maintain-and-widen-community-map")),
        Piece("marcus", "witness_testimony", 75, "Witness testimony: Mr K's first visit to the lunch club",
              "I am a senior support worker in the same home care team as Grace. On the date given I was with her when "
              "she supported Mr K to go to the community centre lunch club for the first time, which he had chosen "
              "from the community map they made together. Grace introduced him to the organiser and then stepped back, "
              "letting him decide where to sit and whether to stay; he stayed for the quiz. Afterwards she asked him "
              "what had worked and what had not, and wrote it in his learning log in his words.",
              {"6.1": "He chose an outcome that connects him with other people.",
               "6.2": "Supported him to join a community group and build his network."},
              ("well-being-connect", "develop-community-map"), setting="own_home"),
    ),
    "c": (
        Piece("daniel", "observation", 45, "Person-centred review with Mrs B at Hollybank",
              "I observed Tomasz facilitating a person-centred review for Mrs B in the quiet lounge, with her son, "
              "her key worker and the visiting district nurse. He put up sheets for what is working and not working "
              "from Mrs B's, her son's and the staff's perspectives, and made sure her views went up first, in her "
              "words. When the nurse raised the risk of falls he brought the conversation back to what Mrs B wants: "
              "to go back to the Sunday service at her chapel. The review agreed her outcomes for the next year and "
              "who would do what by when.",
              {"1.3": "Outcomes agreed with Mrs B at her review, starting from what she wants.",
               "4.3": "Facilitated the review, keeping her perspective first.",
               "4.4": "Outcomes for the year and who does what by when, recorded in her words."},
              ("person-centred-practices-working-and-not-working-from-different-perspectives",
               "person-centred-practices-person-centred-review", "outcomes-social-participation",
               "actions-identifying-what-is-working-and-not-working-from-different-perspectives",
               "actions-recording-the-service-user-s-outcomes-for-the-next-year"),
              setting="long_term_care"),
        Piece("candidate", "work_product", 30, "Learning log for Mrs B's evening routine",
              "I set up a learning log for Mrs B's evening routine after she said at her review that she was going to "
              "bed earlier than she wanted. Over three weeks the night team recorded what they tried and what "
              "happened, for example that she settles better with the radio on low and her own blanket. I used the "
              "entries to update the evening section of her support plan and read the changes to her before she "
              "agreed them.",
              {"2.3": "A learning log to learn what works for Mrs B in the evening.",
               "4.1": "Updated her support plan from the log, checking the changes with her."},
              ("person-centred-thinking-tools-learning-log", "person-centred-practices-learning-logs"),
              file="learning-log-mrs-b.pdf"),
        Piece("candidate", "work_product", 20, "Decision-making agreement for Mrs B",
              "This is the decision-making agreement I drafted after Mrs B's review. It lists the decisions in her "
              "daily life, such as what she wears, when she has her bath and whether she goes to chapel, and who "
              "makes the final decision for each. I wrote it with her key worker and shared it with the team.",
              {"2.2": "The agreement sets out her decisions, to keep her in control.",
               "5.2": "A decision-making agreement as the basis for shared decision-making."},
              ("service-user-s-voice-choice-and-control-decision-making-agreement",
               "decision-making-decision-making-agreement-chart"),
              file="decision-making-agreement-mrs-b.pdf", outcome="referred",
              feedback="A good start, Tomasz. The agreement lists the decisions but not how Mrs B must be involved "
                       "in each, and it was written with her key worker rather than with her. Add the 'how I must be "
                       "involved' column from her decision-making profile, use her own words for the bath and chapel "
                       "decisions, and say who decides where she and her son disagree. Then resubmit it with your "
                       "declaration."),
    ),
    "d": (
        Piece("marcus", "witness_testimony", 35, "Witness testimony: Mr T joins the allotment group",
              "I am a senior support worker at Brookside and was covering the recovery team that day. I saw Aisha go "
              "with Mr T, who is in recovery from alcohol dependence, to the community allotment group he had picked "
              "from the community map they made together. She had agreed with him beforehand how much she would do, "
              "introduced him to the coordinator and met him at the gate an hour later. On the way back he said he "
              "wanted to go on Saturdays too, and she helped him write it into his plan in his own words.",
              {"3.1": "He took the action himself: joining the group and adding Saturdays to his plan.",
               "6.2": "Supported him to join a community group, stepping back once he was there.",
               "6.3": "He plans to widen his involvement to a second day."},
              ("action-needed-connecting-with-the-community", "develop-community-map",
               "maintain-and-widen-community-map"),
              setting="recovery"),
        Piece("candidate", "work_product", 40, "Community map made with Mr T",
              "Mr T and I drew this community map together at the recovery hub, marking the places he already goes "
              "and the ones he wants to try. He chose the allotment group because he grew vegetables with his "
              "grandad and wanted something to do on the days he used to drink. We also marked the library job club "
              "and a mutual aid meeting. It has no address or surname on it, so it can be uploaded.",
              {"6.2": "The community map shows his networks and where he wants to belong.",
               "6.3": "Identifies new places for him to take part and contribute."},
              ("develop-community-map", "maintain-and-widen-community-map"), file="community-map-mr-t.png"),
        Piece("candidate", "work_product", 25, "Five ways to well-being: Mr T's outcomes",
              "I used the 'five ways to well-being' with Mr T to help him name outcomes for the next three months. He "
              "chose to connect (the allotment on Tuesdays and Saturdays), be active (cycling to the hub), take "
              "notice (a seed diary), keep learning (a food hygiene course) and give (sharing his produce with the "
              "food bank). We wrote each outcome in his words, with how he will know it is happening.",
              {"6.1": "Outcomes for his well-being, one for each of the five ways, in his words."},
              ("well-being-connect", "well-being-be-active", "well-being-take-notice", "well-being-keep-learning",
               "well-being-give"),
              file="five-ways-mr-t.pdf"),
    ),
    "e": (
        Piece("daniel", "observation", 6, "4 plus 1 questions with Mrs H in week three of reablement",
              "I observed Ben with Mrs H in the third week of her reablement after a hip replacement. He used the 4 "
              "plus 1 questions: what have we tried, what have we learned, what are we pleased about, what are we "
              "concerned about, and what next. Mrs H was pleased to be making her own breakfast again but worried "
              "about the stairs, so they agreed the physiotherapist would practise the stairs with her before the "
              "next visit. Ben updated her support plan there and then and read it back to her.",
              {"3.4": "Adapted his practice to a woman regaining skills in reablement.",
               "4.1": "Used the 4 plus 1 questions to update her support plan with her."},
              ("contexts-people-receiving-reablement", "person-centred-practices-4-plus-one-questions"),
              setting="reablement", outcome="submitted"),
        Piece("candidate", "work_product", 3, "Good days and bad days with Mrs H",
              "Draft: I am writing up the good days and bad days conversation I had with Mrs H. A good day is when "
              "she is dressed by ten and can phone her sister; a bad day is when the carers come late and she waits "
              "in her nightclothes. I still need to add what we agreed to change.",
              {"2.1": "Good days and bad days: what is important to Mrs H."},
              ("person-centred-tools-good-days-and-bad-days",), file="good-days-bad-days-mrs-h.pdf",
              outcome="draft"),
    ),
    "f": (
        Piece("daniel", "observation", 250, "Supporting Mr P to decide about a ground-floor room",
              "I observed Leah supporting Mr P to decide whether to move to a ground-floor room after two falls on "
              "the stairs. She started with what he values about his room, the bird feeder outside and being near "
              "his friend, and used his decision-making profile to present the options on picture cards at his pace. "
              "With a happy/safe grid he decided to stay upstairs with a sensor mat and a second handrail, and she "
              "recorded it as his decision. She then agreed with him and the team who would do what.",
              {"1.2": "His rights and choice upheld: the decision to stay upstairs was his.",
               "1.3": "Agreed the outcome with him: staying in the room he values, more safely.",
               "2.1": "Started from what is important to him about his room.",
               "2.2": "Used his decision-making profile and picture cards so he could choose.",
               "3.2": "Agreed with him and the team who does what.",
               "5.1": "The happy/safe grid: positive risk taking.",
               "5.2": "Shared decision-making based on his decision-making profile."},
              ("outcomes-autonomy", "service-user-s-voice-choice-and-control-decision-making-profile",
               "clarify-responsibilities-decision-making-agreement", "decision-making-decision-making-profile"),
              setting="long_term_care"),
        Piece("candidate", "work_product", 200, "Person-centred description and support plan for Mr P",
              "This person-centred description for Mr P was built from his good days and bad days, his history in "
              "the merchant navy and a learning log the team kept for a month. It sets out what matters to him, how "
              "he wants to be supported, how his individual service fund pays for a weekly outing, and what he wants "
              "to change. Mr P chose what went in and what stayed private, and all names are removed.",
              {"2.1": "Good days and bad days: what matters to and for him.",
               "2.3": "His history and a learning log, to learn about him.",
               "2.4": "A detailed person-centred description and support plan.",
               "3.3": "How his individual service fund is used.",
               "4.1": "Updated from the learning log to reflect his choices."},
              ("person-centred-tools-good-days-and-bad-days", "person-centred-thinking-tools-histories",
               "person-centred-thinking-tools-learning-log",
               "description-or-support-plan-what-is-important-to-the-service-user-person-centred-description",
               "support-arrangements-individual-service-funds-one-way-to-manage-a-personal-budget",
               "person-centred-practices-learning-logs"),
              file="support-plan-mr-p.pdf"),
        Piece("daniel", "observation", 120, "Mr P's person-centred review",
              "Leah helped Mr P prepare for his annual review a week early, going through his one-page profile and "
              "writing invitations to the people he chose. On the day she facilitated the review in his room, asking "
              "what everyone appreciates about him and what is working and not working from each perspective. His "
              "outcomes for the next year, feeding the birds himself and visiting the veterans' club, were recorded "
              "with names and dates. She wrote key points on a whiteboard because of his hearing.",
              {"3.4": "Adapted the review to a man living in long-term care with hearing loss.",
               "4.2": "Helped him prepare and choose who to invite.",
               "4.3": "Facilitated the review.",
               "4.4": "His outcomes for the year, with who does what by when."},
              ("contexts-people-living-in-long-term-care",
               "actions-recording-the-service-user-s-outcomes-for-the-next-year",
               "actions-being-clear-who-will-do-what-by-when-to-achieve-the-outcome-and-the-implications-of-this-for-"
               "the-roles-of-staff-eg-and-a-personalised-rota"),
              setting="long_term_care"),
        Piece("daniel", "professional_discussion", 100, "Professional discussion: values, outcomes and community",
              "Leah explained the values central to personalisation, with an example of each from her work. We "
              "discussed how she helped Mr P act on his plan, contacting the veterans' club through an advocate, and "
              "how she used the 'five ways to well-being' to find outcomes with him. She described how he has moved "
              "from being present at the club to contributing, by setting out the chairs and sharing his navy "
              "photographs.",
              {"1.1": "Named the values central to personalisation, with examples.",
               "3.1": "Enabled him to act on his plan, through an advocate.",
               "6.1": "The five ways to well-being to identify his outcomes.",
               "6.2": "Rebuilt his network through the veterans' club.",
               "6.3": "From presence to contribution at the club."},
              ("action-needed-advocacy", "action-needed-connecting-with-the-community", "well-being-connect",
               "well-being-give", "develop-presence-to-contribution", "maintain-and-widen-presence-to-contribution")),
    ),
}

# What the witness's testimony records about them (C&G recording form RF03).
WITNESS_ROLE = "Senior support worker, Brookside Community Support"
WITNESS_RELATIONSHIP = "Senior colleague who works shifts alongside the candidate; not related"
WITNESS_CONTACT = "01632 960418 (Brookside office)"

# Candidate f's Unit 001 assignment is marked by the assessor who may assess Unit 001 only.
UNIT_001_MARKER = "priya"

# The criteria each candidate's assessor has judged met; "all" for every criterion of the unit.
MET = {"b": "all", "c": ("1.3", "2.3", "4.1", "4.3", "4.4"), "d": ("6.1", "6.2", "6.3"), "f": "all"}

# The documents the work products attach: a title and the lines of the page (people by initials only).
DOCUMENTS = {
    "one-page-profile-mr-k.png": ("One-page profile: Mr K", (
        "What people like and admire about me: my dry humour; I never miss a bowls match.",
        "What is important to me: my bowls club friends; my late wife's garden; tea first thing.",
        "How best to support me: knock twice and wait; talk to my good ear; let me do the list.")),
    "community-map-mr-t.png": ("Community map: Mr T", (
        "Places I go now: the recovery hub (Mon, Wed); the corner shop; my sister's on Sundays.",
        "Places I want to try: the allotment group (Tue); the library job club; the cycle workshop.",
        "People I could meet there: growers, the job club volunteer, the mutual aid group.")),
    "support-plan-mr-k.pdf": ("Support plan and personalised rota: Mr K", (
        "What I want to change: get to bowls on Tuesdays and Thursdays; later morning calls.",
        "My budget: direct payment for a driver on Tuesdays; agency hours for morning calls.",
        "Doughnut: core - medication prompts; judgement - encouraging me out; not your business - my club spending.",
        "Rota: morning call 9.30 on club days; no call on Thursday afternoons.",
        "Action plan: I phone the club captain by Friday; Grace updates the rota by the 1st.")),
    "learning-log-mrs-b.pdf": ("Learning log: Mrs B, evening routine", (
        "Week 1: bed at 8.30 as usual - Mrs B said she was not tired. Not working.",
        "Week 2: radio on low, own blanket, bed at 9.45 - settled well. Working.",
        "Week 3: same again, cocoa at 9.15 - slept through. Working.",
        "Change to plan: evening routine starts 9.15, radio and blanket; agreed with Mrs B.")),
    "decision-making-agreement-mrs-b.pdf": ("Decision-making agreement: Mrs B", (
        "Decision: what I wear - final decision: Mrs B.",
        "Decision: when I have my bath - final decision: staff rota.",
        "Decision: going to chapel on Sunday - final decision: senior on shift.")),
    "five-ways-mr-t.pdf": ("Five ways to well-being: Mr T's outcomes", (
        "Connect: I go to the allotment group on Tuesdays and Saturdays.",
        "Be active: I cycle to the hub instead of taking the bus.",
        "Take notice: I keep a seed diary of what comes up.",
        "Keep learning: I finish the food hygiene course by spring.",
        "Give: I take what I grow to the food bank.")),
    "good-days-bad-days-mrs-h.pdf": ("Good days and bad days: Mrs H (draft)", (
        "Good day: dressed by ten; phone my sister; make my own breakfast.",
        "Bad day: carers late; waiting in my nightclothes; stairs on my own.")),
    "support-plan-mr-p.pdf": ("Person-centred description: Mr P", (
        "What matters to me: my room upstairs; the bird feeder; my friend next door; navy stories.",
        "How to support me: speak on my left side; picture cards for big decisions.",
        "My individual service fund: a weekly outing to the veterans' club.",
        "What I want to change: feed the birds myself; see my old shipmates more often.")),
}


# --- Loading ---------------------------------------------------------------------------------------


@dataclass
class _Build:
    """What the loading steps share: the session, the file store, the day, and the people made so far."""

    session: Session
    storage: LocalStorage
    today: date
    users: dict[str, User] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # document name -> sha256
    candidates: dict[str, Candidate] = field(default_factory=dict)  # stage -> candidate
    pieces: dict[uuid.UUID, Piece] = field(default_factory=dict)  # evidence id -> what it was made from

    def actor(self, key: str) -> Actor:
        """Return a person as the actor, on the demo's today."""
        return Actor(self.users[key], today=self.today)

    def ago(self, days: int) -> date:
        """Return the date some days before today."""
        return self.today - timedelta(days=days)


def is_loaded(session: Session) -> bool:
    """Say whether the demo centre is already in this database."""
    return people.find_user(session, ADMIN_EMAIL) is not None


def load_demo(session: Session, storage: LocalStorage, today: date) -> DemoCentre:
    """Build the demo centre through the services; the bundled spec pack must be loaded already."""
    if is_loaded(session):
        raise InvalidInput("The demo centre is already loaded.")
    build = _Build(session, storage, today)
    build.users["admin"] = people.create_user(session, SYSTEM, _account(STAFF["admin"]))
    _add_staff(build)
    _store_files(build)
    for spec in CANDIDATES:
        build.candidates[spec.stage] = candidate = _register(build, spec)
        for piece in PORTFOLIOS.get(spec.stage, ()):
            _record(build, spec, candidate, piece)
        _judge(build, spec, candidate)
    _finish(build, next(s for s in CANDIDATES if s.stage == "f"))
    _quality(build)
    return logins(session)


def logins(session: Session) -> DemoCentre:
    """Return the demo accounts and the demo candidates' ids, for printing or testing."""
    accounts = tuple(STAFF.values()) + tuple(spec.login for spec in CANDIDATES)
    found = {c.registration_number: c.id for c in session.exec(select(Candidate).where(
        col(Candidate.registration_number).in_([spec.number for spec in CANDIDATES])))}
    return DemoCentre(accounts, {spec.stage: found[spec.number] for spec in CANDIDATES if spec.number in found})


def _account(login: DemoLogin) -> dict:
    """Return the new-account input for a demo login."""
    # a candidate's role comes with their registration, never with the account
    roles = [r for r in login.roles if r != Role.CANDIDATE]
    return {"email": login.email, "name": login.name, "password": DEMO_PASSWORD, "roles": roles}


def _add_staff(build: _Build) -> None:
    """Create the staff accounts and record their credentials, verified by the administrator."""
    admin = build.actor("admin")
    for key, login in STAFF.items():
        if key != "admin":
            build.users[key] = people.create_user(build.session, admin, _account(login))
    _add_credentials(build, admin)
    people.approve_expert_witness(build.session, admin, {
        **{k: v for k, v in EXPERT_WITNESS.items() if k != "user"},
        "user_id": build.users[EXPERT_WITNESS["user"]].id, "approved_on": build.ago(500)})


def _add_credentials(build: _Build, admin: Actor) -> None:
    """Record the assessors' and IQAs' qualifications and occupational competence, as the administrator."""
    for key, (code, years) in QUALIFICATIONS.items():
        people.add_assessor_qualification(build.session, admin, {
            "user_id": build.users[key].id, "qualification_code": code, "awarded_on": build.ago(365 * years),
            "verified_on": build.ago(500)})
    for key, (level, area, proof) in COMPETENCE.items():
        people.record_competence(build.session, admin, {"user_id": build.users[key].id, "level": level,
                                                        "area": area, "evidence": proof,
                                                        "verified_on": build.ago(500)})
    for key, code in IQA_QUALIFICATIONS.items():
        people.add_iqa_qualification(build.session, admin, build.users[key].id, code, build.ago(365 * 3),
                                     build.ago(500))


def _register(build: _Build, spec: CandidateSpec) -> Candidate:
    """Create a candidate's account, register them, and attach their assessors, IQA and witnesses."""
    admin = build.actor("admin")
    build.users[spec.stage] = people.create_user(build.session, admin, _account(spec.login))
    candidate = people.register_candidate(build.session, admin, {
        "user_id": build.users[spec.stage].id, "qualification": "3085-02", "registration_number": spec.number,
        "date_of_birth": _birth_date(build.today, spec), "registration_date": build.ago(spec.registered_days_ago),
        "workplace": spec.workplace, "work_setting": spec.setting,
        "assessor_ids": [build.users[k].id for k in spec.assessors], "iqa_ids": [build.users[spec.iqa].id]})
    for key in spec.witnesses:
        people.assign(build.session, admin, candidate, build.users[key], Role.WITNESS)
    for key in spec.expert_witnesses:
        people.assign(build.session, admin, candidate, build.users[key], Role.EXPERT_WITNESS)
    return candidate


def _birth_date(today: date, spec: CandidateSpec) -> date:
    """Return a date of birth that makes the candidate the given age on the demo's today."""
    year = today.year - spec.age - ((today.month, today.day) < spec.birthday)
    return date(year, *spec.birthday)


def _record(build: _Build, spec: CandidateSpec, candidate: Candidate, piece: Piece) -> Evidence:
    """Capture one piece of evidence as its author would, then have the assessor accept or refer it."""
    author = spec.stage if piece.by == "candidate" else piece.by
    item = evidence.capture(build.session, build.actor(author), _content(build, candidate, piece))
    if piece.method == "work_product" and piece.outcome != "draft" and piece.by != "candidate":
        # A work product seen in place is recorded by the assessor; the candidate still declares it their own.
        evidence.sign(build.session, build.actor(spec.stage), item.id, {"kind": "authenticity"})
    if piece.outcome in ("accepted", "referred"):
        evidence.review(build.session, build.actor(spec.assessors[0]), item.id, piece.outcome, piece.feedback)
    build.pieces[item.id] = piece
    return item


def _content(build: _Build, candidate: Candidate, piece: Piece) -> dict:
    """Return the capture input for a piece of evidence, with its signatures."""
    data = {"candidate_id": candidate.id, "unit": "002", "method": piece.method, "title": piece.title,
            "activity_date": build.ago(piece.days_ago), "setting": piece.setting, "narrative": piece.narrative,
            "criteria": [{"code": code, "note": note} for code, note in piece.criteria.items()],
            "range_items": list(piece.range_items), "submit": piece.outcome != "draft",
            "signatures": _signatures(build, piece)}
    if piece.file:
        data["attachments"] = [{"sha256": build.files[piece.file], "filename": piece.file}]
    if piece.location:
        data |= {"seen_in_place": True, "location": piece.location}
    if piece.method == "witness_testimony":
        witness = STAFF[piece.by]
        data |= {"witness_name": witness.name, "witness_role": WITNESS_ROLE, "witness_contact": WITNESS_CONTACT,
                 "witness_relationship": WITNESS_RELATIONSHIP}
    return data


def _signatures(build: _Build, piece: Piece) -> list[dict]:
    """Return the signatures made when the evidence is captured, on the author's device."""
    if piece.outcome == "draft":
        return []
    if piece.method == "observation":
        return [{"kind": "observer"}, {"kind": "countersignature"}]
    if piece.method == "witness_testimony":
        return [{"kind": "witness", "image_sha256": build.files["signature"]}]
    if piece.method == "work_product" and piece.by == "candidate":
        return [{"kind": "authenticity"}]
    return []


def _judge(build: _Build, spec: CandidateSpec, candidate: Candidate) -> None:
    """Have the candidate's assessor judge criteria met on the accepted evidence mapped to each."""
    chosen = MET.get(spec.stage, ())
    unit = evidence.unit_for(build.session, candidate, "002")
    codes = [c.code for c in assessment.criteria_of(build.session, unit)] if chosen == "all" else chosen
    accepted = {e.id: build.pieces[e.id] for e in build.session.exec(select(Evidence).where(
        Evidence.candidate_id == candidate.id, Evidence.status == "accepted"))}
    for code in codes:
        mapped = {i: p for i, p in accepted.items() if code in p.criteria}
        note = "Met. " + " ".join(p.criteria[code] for p in mapped.values())
        assessment.decide(build.session, build.actor(spec.assessors[0]), candidate.id, "002", code, "met",
                          list(mapped), note)


def _finish(build: _Build, spec: CandidateSpec) -> None:
    """Sign off a candidate's Unit 002 and have the Unit 001 assessor record their assignment result."""
    candidate = build.candidates[spec.stage]
    assessment.sign_off(build.session, build.actor(spec.assessors[0]), candidate.id, "002", declaration_signed=True)
    assessment.record_assignment_result(
        build.session, build.actor(UNIT_001_MARKER), candidate.id, "001", "pass",
        "Assignment marked against the City & Guilds marking guidance: every task achieved.")


def _quality(build: _Build) -> None:
    """Give Daniel (IQA) an interim strategy and a drawn sample with one disagreement and an open action;
    Margaret is the lead IQA, and has sampled and agreed with Leah Campbell's sign-off."""
    quality.set_lead(build.session, build.actor("admin"), build.users["margaret"], True)
    daniel = build.actor("daniel")
    strategy = quality.create_strategy(build.session, daniel, {
        "name": "Interim sampling, this quarter", "kind": "interim", "cycle_start": build.ago(90),
        "cycle_end": build.today + timedelta(days=90), "base_rate": 20, "new_assessor_decisions": 0})
    sample = quality.draw(build.session, daniel, strategy.id, DEMO_SEED)
    items = build.session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)
                               .order_by(SampleItem.decision_id)).all()
    quality.review(build.session, daniel, items[0].id, "disagree",
                   "The observation record describes the tasks done but not how the person led the conversation; "
                   "the judgement needs the person's own words.",
                   "Feedback to the candidate was encouraging but did not say what to do next.",
                   "Add to the decision note what the person said and decided, or re-observe this criterion.",
                   build.today + timedelta(days=14))
    for item in items[1:2]:
        quality.review(build.session, daniel, item.id, "agree", "Clear, well-mapped evidence.")
    _summative(build)


def _summative(build: _Build) -> None:
    """Have Margaret sample her candidates' signed-off units and agree with Leah Campbell's sign-off."""
    margaret = build.actor("margaret")
    strategy = quality.create_strategy(build.session, margaret, {
        "name": "Summative sampling, this quarter", "kind": "summative", "cycle_start": build.ago(90),
        "cycle_end": build.today + timedelta(days=90), "base_rate": 100})
    sample = quality.draw(build.session, margaret, strategy.id, DEMO_SEED)
    for item in build.session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)):
        quality.review(build.session, margaret, item.id, "agree", "",
                       "Each decision names the evidence it rests on and says what Leah did; the feedback on her "
                       "evidence tells her what went well and what to develop next.")


# --- Files -----------------------------------------------------------------------------------------


def _store_files(build: _Build) -> None:
    """Make the demo's documents and the witness's drawn signature, and store them by hash."""
    for name, (title, lines) in DOCUMENTS.items():
        data, media_type = (_pdf(title, lines), "application/pdf") if name.endswith(".pdf") else (
            _png(title, lines), "image/png")
        build.files[name] = store(build.session, build.storage, BytesIO(data), media_type, MAX_FILE).sha256
    build.files["signature"] = store(build.session, build.storage, BytesIO(_signature_png()), "image/png",
                                     MAX_FILE).sha256


def _pdf_text(text: str) -> str:
    """Escape text for a PDF string literal."""
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pdf_page(title: str, lines: tuple[str, ...]) -> bytes:
    """Return the content stream of a page: a title and wrapped lines in Helvetica."""
    wrapped = [w for line in lines for w in textwrap.wrap(line, 90) + [""]]
    ops = [f"BT /F1 16 Tf 56 780 Td ({_pdf_text(title)}) Tj /F1 10 Tf 15 TL T*"]
    ops += [f"({_pdf_text(w)}) '" for w in wrapped]
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def _pdf(title: str, lines: tuple[str, ...]) -> bytes:
    """Write a valid one-page PDF by hand: five objects, a cross-reference table and a trailer."""
    page = _pdf_page(title, lines)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
               b"/Contents 5 0 R >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(page), page)]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _png(title: str, lines: tuple[str, ...]) -> bytes:
    """Render a one-page document as a PNG, as a photo of the paper copy would show it."""
    wrapped = [w for line in lines for w in textwrap.wrap(line, 70) + [""]]
    image = Image.new("RGB", (640, 90 + 22 * len(wrapped)), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 631, image.height - 9), outline=(40, 90, 140), width=3)
    draw.text((24, 22), title, fill=(40, 90, 140), font=ImageFont.load_default(size=24))
    body = ImageFont.load_default(size=15)
    for n, text in enumerate(wrapped):
        draw.text((24, 70 + 22 * n), text, fill=(20, 20, 20), font=body)
    return _png_bytes(image)


def _signature_png() -> bytes:
    """Draw a handwritten-looking signature, as signed with a finger on the assessor's tablet."""
    image = Image.new("L", (360, 120), 255)
    points = [(24 + 1.6 * t + 14 * math.sin(t / 4), 64 - 26 * math.cos(t / 4) * math.exp(-t / 160) - t / 12)
              for t in range(190)]
    ImageDraw.Draw(image).line(points, fill=25, width=3, joint="curve")
    return _png_bytes(image)


def _png_bytes(image: Image.Image) -> bytes:
    """Encode an image as PNG."""
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
