//! Vocabularies of the fictional country: names, places, occupations, diagnoses.

pub const FEMALE_NAMES: &[&str] = &[
    "Anna", "Maria", "Elena", "Sofia", "Laura", "Emma", "Julia", "Hanna", "Eva", "Sara", "Ida",
    "Nora", "Lea", "Mia", "Alice", "Clara", "Helena", "Kristina", "Liisa", "Marta", "Olga",
    "Paula", "Rita", "Silvia", "Tiina", "Ulla", "Vera", "Aino", "Berit", "Carmen", "Diana",
    "Edith", "Frida", "Greta", "Irene", "Johanna", "Karin", "Linnea", "Maja", "Nadia", "Petra",
    "Ronja", "Selma", "Tova", "Valeria", "Wilma", "Agnes", "Birgit", "Cecilia", "Dagmar",
];

pub const MALE_NAMES: &[&str] = &[
    "Jan",
    "Peter",
    "Thomas",
    "Martin",
    "Andreas",
    "Mikael",
    "Johan",
    "Lukas",
    "David",
    "Daniel",
    "Erik",
    "Felix",
    "Henrik",
    "Jonas",
    "Karl",
    "Leo",
    "Marcus",
    "Niklas",
    "Oskar",
    "Paul",
    "Rasmus",
    "Simon",
    "Tobias",
    "Viktor",
    "Aleksander",
    "Bruno",
    "Carl",
    "Emil",
    "Filip",
    "Gustav",
    "Hugo",
    "Isak",
    "Jakob",
    "Kevin",
    "Lars",
    "Magnus",
    "Noah",
    "Olav",
    "Patrik",
    "Robert",
    "Sebastian",
    "Timo",
    "Urmas",
    "Valter",
    "William",
    "Anton",
    "Benjamin",
    "Elias",
    "Matteo",
    "Adam",
];

pub const FAMILY_NAMES: &[&str] = &[
    "Tamm",
    "Saar",
    "Sepp",
    "Mägi",
    "Kask",
    "Kukk",
    "Rebane",
    "Ilves",
    "Pärn",
    "Koppel",
    "Nielsen",
    "Hansen",
    "Jensen",
    "Larsen",
    "Andersen",
    "Berg",
    "Lind",
    "Holm",
    "Ström",
    "Dahl",
    "Virtanen",
    "Korhonen",
    "Nieminen",
    "Mäkinen",
    "Hämäläinen",
    "Laine",
    "Heikkinen",
    "Koskinen",
    "Järvinen",
    "Lehtonen",
    "Schmidt",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Novak",
    "Horvat",
    "Kovač",
    "Babić",
    "Marić",
    "Jansen",
    "de Vries",
    "van Dijk",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "Bos",
    "Kowalski",
    "Nowak",
    "Wiśniewski",
    "Lewandowski",
    "Zieliński",
    "Ozols",
    "Bērziņš",
    "Kalniņš",
    "Petrov",
    "Ivanova",
];

/// Municipality, population weight, two-digit postcode prefix.
pub const MUNICIPALITIES: &[(&str, f64, u32)] = &[
    ("Northport", 420.0, 10),
    ("Eastbridge", 180.0, 12),
    ("Westhaven", 150.0, 14),
    ("Southmoor", 120.0, 16),
    ("Riverton", 95.0, 20),
    ("Lakeside", 80.0, 22),
    ("Highfield", 70.0, 24),
    ("Stonebury", 60.0, 30),
    ("Ashford", 55.0, 32),
    ("Millbrook", 50.0, 34),
    ("Oakridge", 45.0, 40),
    ("Fairview", 40.0, 42),
    ("Kingsport", 38.0, 44),
    ("Greenvale", 30.0, 50),
    ("Harborview", 28.0, 52),
    ("Pinecrest", 24.0, 60),
    ("Brookfield", 20.0, 62),
    ("Redcliff", 16.0, 70),
    ("Silverlake", 12.0, 72),
    ("Thornbury", 10.0, 80),
];

pub const STREETS: &[&str] = &[
    "Harbour", "Mill", "Church", "Station", "Market", "School", "Park", "Forest", "Lake", "River",
    "Bridge", "Garden", "Meadow", "Castle", "Birch", "Linden", "Maple", "Willow", "North", "South",
    "Sea", "Hill", "Old Town", "King's", "Queen's",
];
pub const STREET_KINDS: &[&str] = &["Street", "Road", "Lane", "Avenue", "Way", "Square"];

/// Occupation, minimum education level (ISCED 0–8), skills it draws on.
pub const OCCUPATIONS: &[(&str, i32, &[&str])] = &[
    (
        "nurse",
        6,
        &[
            "patient care",
            "medication administration",
            "wound care",
            "triage",
            "teamwork",
        ],
    ),
    (
        "care assistant",
        3,
        &[
            "patient care",
            "hygiene assistance",
            "teamwork",
            "empathy",
            "mobility support",
        ],
    ),
    (
        "physician",
        7,
        &[
            "diagnosis",
            "patient care",
            "prescribing",
            "emergency medicine",
            "teamwork",
        ],
    ),
    (
        "laboratory technician",
        5,
        &[
            "sample analysis",
            "laboratory safety",
            "quality control",
            "data entry",
        ],
    ),
    (
        "pharmacist",
        7,
        &[
            "prescribing",
            "medication administration",
            "customer service",
            "quality control",
        ],
    ),
    (
        "cook",
        3,
        &[
            "food preparation",
            "food hygiene",
            "menu planning",
            "teamwork",
        ],
    ),
    (
        "cleaner",
        1,
        &[
            "cleaning",
            "hygiene assistance",
            "waste handling",
            "reliability",
        ],
    ),
    (
        "porter",
        2,
        &["mobility support", "logistics", "reliability", "teamwork"],
    ),
    (
        "administrator",
        4,
        &[
            "data entry",
            "scheduling",
            "customer service",
            "office software",
        ],
    ),
    (
        "IT support",
        5,
        &[
            "troubleshooting",
            "networking",
            "office software",
            "customer service",
        ],
    ),
    (
        "software developer",
        6,
        &["programming", "databases", "troubleshooting", "teamwork"],
    ),
    (
        "accountant",
        6,
        &["bookkeeping", "taxation", "office software", "reporting"],
    ),
    (
        "electrician",
        4,
        &[
            "electrical installation",
            "safety regulations",
            "troubleshooting",
        ],
    ),
    (
        "truck driver",
        2,
        &["driving licence C", "logistics", "reliability"],
    ),
    (
        "warehouse worker",
        2,
        &["logistics", "forklift", "reliability", "teamwork"],
    ),
    (
        "retail assistant",
        3,
        &["customer service", "cash handling", "teamwork"],
    ),
    (
        "teacher",
        7,
        &[
            "teaching",
            "curriculum planning",
            "communication",
            "empathy",
        ],
    ),
    (
        "construction worker",
        2,
        &["construction", "safety regulations", "teamwork"],
    ),
    (
        "social worker",
        6,
        &["case management", "empathy", "communication", "reporting"],
    ),
    (
        "receptionist",
        3,
        &[
            "customer service",
            "scheduling",
            "office software",
            "communication",
        ],
    ),
];

/// Hospital occupations advertised as vacancies (indices into OCCUPATIONS).
pub const HOSPITAL_OCCUPATIONS: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 19];

/// NACE sections with employment weights and a relative pay level.
pub const SECTORS: &[(&str, f64, f64)] = &[
    ("A", 2.0, 0.80),
    ("B", 0.5, 1.30),
    ("C", 14.0, 1.05),
    ("D", 0.8, 1.35),
    ("E", 0.8, 0.95),
    ("F", 7.0, 1.00),
    ("G", 14.0, 0.85),
    ("H", 6.0, 0.95),
    ("I", 4.5, 0.70),
    ("J", 4.5, 1.45),
    ("K", 2.5, 1.50),
    ("L", 1.0, 1.05),
    ("M", 6.0, 1.25),
    ("N", 5.0, 0.80),
    ("O", 6.5, 1.10),
    ("P", 8.0, 1.00),
    ("Q", 12.0, 0.95),
    ("R", 1.8, 0.85),
    ("S", 2.0, 0.80),
    ("T", 0.3, 0.60),
    ("U", 0.1, 1.20),
];

/// ICD-10 code, weight, base 30-day readmission log-odds, mean length of stay (days),
/// minimum age.
pub const DIAGNOSES: &[(&str, f64, f64, f64, i32)] = &[
    ("I50", 6.0, -0.9, 7.0, 40),  // heart failure
    ("I21", 4.0, -1.5, 5.0, 35),  // acute myocardial infarction
    ("J18", 7.0, -1.7, 5.0, 0),   // pneumonia
    ("J44", 4.5, -1.1, 6.0, 40),  // COPD
    ("E11", 3.0, -1.6, 4.0, 20),  // type 2 diabetes
    ("S72", 3.5, -1.8, 9.0, 50),  // hip fracture
    ("K35", 3.0, -3.2, 3.0, 5),   // appendicitis
    ("O80", 6.0, -3.8, 2.0, 17),  // delivery
    ("F32", 2.5, -1.9, 12.0, 15), // depression
    ("C34", 2.0, -1.2, 8.0, 40),  // lung cancer
    ("N39", 4.0, -2.0, 3.0, 0),   // urinary tract infection
    ("A41", 2.0, -1.3, 10.0, 0),  // sepsis
    ("I63", 3.0, -1.6, 9.0, 40),  // stroke
    ("K80", 3.0, -2.8, 3.0, 18),  // gallstones
    ("S06", 2.0, -2.4, 4.0, 0),   // head injury
];

pub const BENEFIT_TYPES: &[&str] = &["unemployment_allowance", "housing_benefit", "child_benefit"];

/// Incident category, weight, description templates.
pub const INCIDENTS: &[(&str, f64, &[&str])] = &[
    (
        "pothole",
        20.0,
        &["Deep pothole in the road", "Broken asphalt near crossing"],
    ),
    (
        "streetlight",
        15.0,
        &["Street light not working", "Flickering street lamp"],
    ),
    (
        "bike_accident",
        6.0,
        &[
            "Cyclist fell on wet tram rails",
            "Collision between bike and car",
        ],
    ),
    (
        "litter",
        18.0,
        &["Overflowing bin", "Rubbish dumped on pavement"],
    ),
    (
        "noise",
        12.0,
        &["Loud music at night", "Construction noise before 7am"],
    ),
    (
        "graffiti",
        8.0,
        &["Graffiti on school wall", "Tags on bus shelter"],
    ),
    (
        "flooding",
        4.0,
        &["Flooded underpass", "Blocked drain, water on road"],
    ),
    (
        "traffic_light",
        5.0,
        &["Traffic light stuck on red", "Pedestrian signal broken"],
    ),
];
pub const INCIDENT_STATUS: &[(&str, f64)] =
    &[("resolved", 70.0), ("in_progress", 20.0), ("open", 10.0)];

/// Centre of Northport for incident coordinates.
pub const NORTHPORT_LAT: f64 = 58.378;
pub const NORTHPORT_LON: f64 = 26.729;
