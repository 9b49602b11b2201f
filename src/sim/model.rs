//! The simulated PBX: two Kazoo accounts with their users, devices, numbers and callflows.
//!
//! [`Pbx::demo`] builds the same directory for the same seed. Names, extensions and numbers
//! are fixed (the scenario docs refer to them); only the 32-hex ids and SIP usernames come
//! from the seed. It derives `Serialize` so a fake Crossbar can serve it as the directory the
//! assembler enriches sessions from. Telephone numbers use ranges reserved for fiction
//! (NANP 555-01XX, Ofcom 020 7946 0XXX / 07700 900XXX).

use serde::Serialize;

use super::rng::Rng;

/// The seed of the PBX the committed fixtures were generated with.
pub const DEMO_SEED: u64 = 20_240_514;

/// Index of the main number in [`Account::dids`] (rings the reception device, index 0).
pub(crate) const DID_MAIN: usize = 0;
/// Index of the ring-group number in [`Account::dids`].
pub(crate) const DID_GROUP: usize = 1;
/// Index of the ACDc queue number in [`Account::dids`].
pub(crate) const DID_QUEUE: usize = 2;
/// Index of the first per-user direct number in [`Account::dids`] (user `i` is `DID_DIRECT + i`).
pub(crate) const DID_DIRECT: usize = 3;

/// A whole simulated Kazoo cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pbx {
    /// The tenants.
    pub accounts: Vec<Account>,
    /// Global carrier resources (offnet).
    pub carriers: Vec<Carrier>,
    /// FreeSWITCH media servers.
    pub media_servers: Vec<MediaServer>,
    /// Public SIP address carriers send calls to (host part of `inception`).
    pub sip_ip: String,
    /// Kazoo application host (`ecallmgr@…`, `kazoo_apps@…`).
    pub kazoo_host: String,
}

/// One Kazoo account (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// 32-hex account id.
    pub id: String,
    /// Account name.
    pub name: String,
    /// SIP realm.
    pub realm: String,
    /// IANA time zone name.
    pub timezone: String,
    /// Default region for number normalisation (ISO 3166 alpha-2).
    pub region: String,
    /// Users; `extension` is their internal number.
    pub users: Vec<User>,
    /// SIP devices, each optionally owned by a user.
    pub devices: Vec<Device>,
    /// Numbers the account owns (E.164), each routed to a callflow.
    pub dids: Vec<Did>,
    /// The account's simultaneous ring group.
    pub ring_group: RingGroup,
    /// The account's ACDc queue.
    pub queue: Queue,
    /// Callflows: numbers/patterns → module and target.
    pub callflows: Vec<Callflow>,
}

/// A Kazoo user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// 32-hex user id.
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Internal extension, e.g. `1001`.
    pub extension: String,
    /// E-mail address.
    pub email: String,
}

/// A SIP device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// 32-hex device id.
    pub id: String,
    /// Display name, e.g. `(T42S) Front Desk`.
    pub name: String,
    /// SIP username, e.g. `user_4k2n9x`.
    pub username: String,
    /// Owning user, if any.
    pub owner_id: Option<String>,
    /// `sip_device` or `softphone`.
    pub device_type: String,
    /// SIP User-Agent the device sends.
    pub user_agent: String,
    /// Source address the device registers from.
    pub ip: String,
    /// Unconditional call-forward, if enabled.
    pub call_forward: Option<CallForward>,
}

/// A device's call-forward setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallForward {
    /// Forwarding is on.
    pub enabled: bool,
    /// Target number (E.164).
    pub number: String,
}

/// A number the account owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Did {
    /// E.164 number.
    pub number: String,
    /// Friendly name (`ddiName`).
    pub name: String,
    /// Callflow the number routes to.
    pub callflow_id: String,
}

/// A simultaneous ring group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RingGroup {
    /// 32-hex group id.
    pub id: String,
    /// Group name.
    pub name: String,
    /// `simultaneous`.
    pub strategy: String,
    /// Member device ids, in ring order.
    pub members: Vec<String>,
    /// Callflow that rings the group.
    pub callflow_id: String,
}

/// An ACDc queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Queue {
    /// 32-hex queue id.
    pub id: String,
    /// Queue name.
    pub name: String,
    /// Agent user ids.
    pub agents: Vec<String>,
    /// Callflow that sends callers into the queue.
    pub callflow_id: String,
}

/// A callflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Callflow {
    /// 32-hex callflow id (the `callflow_id` channel variable).
    pub id: String,
    /// Callflow name.
    pub name: String,
    /// Numbers and patterns it answers (`no_match` for the offnet catch-all).
    pub numbers: Vec<String>,
    /// First module: `user`, `device`, `ring_group`, `acdc_member`, `park`, `intercept`, `offnet`.
    pub module: String,
    /// Id of the module's target document, if any.
    pub target_id: Option<String>,
}

/// A global carrier resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Carrier {
    /// 32-hex resource id.
    pub id: String,
    /// Resource name.
    pub name: String,
    /// Signalling and media address.
    pub ip: String,
    /// Host part of call ids for carriers that use one (else `uuid@ip`).
    pub call_id_host: Option<String>,
    /// User-Agent on the carrier's legs, when the SBC sends one.
    pub user_agent: Option<String>,
}

/// A FreeSWITCH media server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaServer {
    /// Host name.
    pub hostname: String,
    /// Internal address.
    pub ip: String,
}

struct AccountSpec {
    name: &'static str,
    realm: &'static str,
    timezone: &'static str,
    region: &'static str,
    users: [(&'static str, &'static str); 5],
    first_ext: u32,
    did_prefix: &'static str,
    group: (&'static str, [usize; 3]),
    queue: (&'static str, [usize; 3]),
    forwarded_user: usize,
    forward_to: &'static str,
    devices: [(&'static str, Option<usize>, &'static str); 7],
    reception: &'static str,
}

const MODELS: &[(&str, &str, &str)] = &[
    ("T42S", "sip_device", "Yealink SIP-T42S 66.86.0.15"),
    ("T54W", "sip_device", "Yealink SIP-T54W 96.86.0.70"),
    ("VVX 450", "sip_device", "PolycomVVX-VVX_450-UA/6.4.3.5018"),
    ("Bria", "softphone", "Bria 6 release 6.5.2 stamp 112233"),
    ("CP960", "sip_device", "Yealink SIP CP960 73.86.0.15"),
];

fn model(name: &str) -> (&'static str, &'static str) {
    MODELS
        .iter()
        .find(|(m, _, _)| *m == name)
        .map(|(_, t, ua)| (*t, *ua))
        .unwrap_or(("sip_device", "Yealink SIP-T42S 66.86.0.15"))
}

const ACME: AccountSpec = AccountSpec {
    name: "Acme Corp",
    realm: "acme.sip.example.net",
    timezone: "America/Chicago",
    region: "US",
    users: [
        ("Maria", "Lopez"),
        ("James", "Carter"),
        ("Priya", "Patel"),
        ("Tom", "Becker"),
        ("Lena", "Novak"),
    ],
    first_ext: 1001,
    did_prefix: "+151255501",
    group: ("Sales", [1, 2, 5]),
    queue: ("Support", [4, 1, 2]),
    forwarded_user: 3,
    forward_to: "+15125550187",
    devices: [
        ("T54W", Some(0), "Front Desk"),
        ("T42S", Some(1), "James Carter"),
        ("VVX 450", Some(2), "Priya Patel"),
        ("T42S", Some(3), "Tom Becker"),
        ("Bria", Some(4), "Lena Novak"),
        ("T42S", None, "Sales Floor"),
        ("CP960", None, "Conference Room"),
    ],
    reception: "Main Line",
};

const GLOBEX: AccountSpec = AccountSpec {
    name: "Globex Ltd",
    realm: "globex.sip.example.net",
    timezone: "Europe/London",
    region: "GB",
    users: [
        ("Oliver", "Hughes"),
        ("Amelia", "Clarke"),
        ("Harry", "Wilson"),
        ("Isla", "Morgan"),
        ("George", "Evans"),
    ],
    first_ext: 2001,
    did_prefix: "+4420794601",
    group: ("Sales Team", [1, 2, 4]),
    queue: ("Help Desk", [2, 4, 1]),
    forwarded_user: 3,
    forward_to: "+447700900321",
    devices: [
        ("T54W", Some(0), "Reception"),
        ("T42S", Some(1), "Amelia Clarke"),
        ("VVX 450", Some(2), "Harry Wilson"),
        ("Bria", Some(3), "Isla Morgan"),
        ("T42S", Some(4), "George Evans"),
        ("T42S", None, "Sales Desk"),
        ("CP960", None, "Boardroom"),
    ],
    reception: "Reception",
};

impl Pbx {
    /// The demo cluster: "Acme Corp" (US, `America/Chicago`) and "Globex Ltd" (GB,
    /// `Europe/London`), each with 5 users (extensions 1001–1005 / 2001–2005), 7 devices
    /// (device `i < 5` owned by user `i`, two unowned), a main number, a ring-group number, a
    /// queue number and one direct number per user. User 3 of each account forwards
    /// unconditionally to a mobile. Ids depend on `seed` only.
    pub fn demo(seed: u64) -> Pbx {
        let mut rng = Rng::new(seed);
        let accounts = [ACME, GLOBEX]
            .iter()
            .enumerate()
            .map(|(i, spec)| account(&mut rng, spec, i))
            .collect();
        let carriers = vec![
            Carrier {
                id: rng.hex(32),
                name: "Carrier One".into(),
                ip: "198.51.100.20".into(),
                call_id_host: None,
                user_agent: None,
            },
            Carrier {
                id: rng.hex(32),
                name: "Carrier Two".into(),
                ip: "198.51.100.77".into(),
                call_id_host: Some("sbc2.carrier-two.example".into()),
                user_agent: Some("Ribbon SBC SWe 9.2".into()),
            },
        ];
        Pbx {
            accounts,
            carriers,
            media_servers: vec![
                MediaServer {
                    hostname: "fs1.example.net".into(),
                    ip: "10.0.0.21".into(),
                },
                MediaServer {
                    hostname: "fs2.example.net".into(),
                    ip: "10.0.0.22".into(),
                },
            ],
            sip_ip: "203.0.113.5".into(),
            kazoo_host: "kz1.example.net".into(),
        }
    }
}

fn account(rng: &mut Rng, spec: &AccountSpec, index: usize) -> Account {
    let id = rng.hex(32);
    let users: Vec<User> = spec
        .users
        .iter()
        .enumerate()
        .map(|(i, (first, last))| User {
            id: rng.hex(32),
            first_name: (*first).into(),
            last_name: (*last).into(),
            extension: (spec.first_ext + i as u32).to_string(),
            email: format!(
                "{}.{}@{}",
                first.to_lowercase(),
                last.to_lowercase(),
                spec.realm.replace(".sip.", ".")
            ),
        })
        .collect();
    let devices: Vec<Device> = spec
        .devices
        .iter()
        .enumerate()
        .map(|(i, (m, owner, label))| {
            let (device_type, ua) = model(m);
            Device {
                id: rng.hex(32),
                name: format!("({m}) {label}"),
                username: format!("user_{}", rng.base36(6)),
                owner_id: owner.map(|u| users[u].id.clone()),
                device_type: device_type.into(),
                user_agent: ua.into(),
                ip: format!("192.0.2.{}", 10 + index * 50 + i),
                call_forward: (*owner == Some(spec.forwarded_user)).then(|| CallForward {
                    enabled: true,
                    number: spec.forward_to.into(),
                }),
            }
        })
        .collect();
    let mut callflows = Vec::new();
    let mut dids = Vec::new();
    let mut flow =
        |rng: &mut Rng, name: String, numbers: Vec<String>, module: &str, target: Option<&str>| {
            let id = rng.hex(32);
            callflows.push(Callflow {
                id: id.clone(),
                name,
                numbers,
                module: module.into(),
                target_id: target.map(str::to_owned),
            });
            id
        };
    let group_id = rng.hex(32);
    let queue_id = rng.hex(32);
    let num = |n: u32| format!("{}{n:02}", spec.did_prefix);
    let main = flow(
        rng,
        spec.reception.into(),
        vec![num(0)],
        "device",
        Some(&devices[0].id),
    );
    dids.push(Did {
        number: num(0),
        name: spec.reception.into(),
        callflow_id: main,
    });
    let group_cf = flow(
        rng,
        spec.group.0.into(),
        vec![num(1), (spec.first_ext + 99).to_string()],
        "ring_group",
        Some(&group_id),
    );
    dids.push(Did {
        number: num(1),
        name: spec.group.0.into(),
        callflow_id: group_cf.clone(),
    });
    let queue_cf = flow(
        rng,
        spec.queue.0.into(),
        vec![num(2), (spec.first_ext + 98).to_string()],
        "acdc_member",
        Some(&queue_id),
    );
    dids.push(Did {
        number: num(2),
        name: spec.queue.0.into(),
        callflow_id: queue_cf.clone(),
    });
    for (i, u) in users.iter().enumerate() {
        let did = num(11 + i as u32);
        let cf = flow(
            rng,
            format!("{} {}", u.first_name, u.last_name),
            vec![u.extension.clone(), did.clone()],
            "user",
            Some(&u.id),
        );
        dids.push(Did {
            number: did,
            name: format!("{} {} Direct", u.first_name, u.last_name),
            callflow_id: cf,
        });
    }
    flow(rng, "Park".into(), vec!["*3".into()], "park", None);
    flow(
        rng,
        "Intercept".into(),
        vec!["*8".into()],
        "intercept",
        None,
    );
    flow(
        rng,
        "Offnet".into(),
        vec!["no_match".into()],
        "offnet",
        None,
    );
    Account {
        id,
        name: spec.name.into(),
        realm: spec.realm.into(),
        timezone: spec.timezone.into(),
        region: spec.region.into(),
        ring_group: RingGroup {
            id: group_id,
            name: spec.group.0.into(),
            strategy: "simultaneous".into(),
            members: spec
                .group
                .1
                .iter()
                .map(|d| devices[*d].id.clone())
                .collect(),
            callflow_id: group_cf,
        },
        queue: Queue {
            id: queue_id,
            name: spec.queue.0.into(),
            agents: spec.queue.1.iter().map(|u| users[*u].id.clone()).collect(),
            callflow_id: queue_cf,
        },
        users,
        devices,
        dids,
        callflows,
    }
}

impl Account {
    /// The user owning device `d`, if any.
    pub fn owner(&self, d: usize) -> Option<&User> {
        let owner = self.devices[d].owner_id.as_deref()?;
        self.users.iter().find(|u| u.id == owner)
    }

    /// Index of user `u`'s device (devices `0..5` belong to users `0..5`).
    pub(crate) fn device_of_user(&self, u: usize) -> usize {
        let id = &self.users[u].id;
        self.devices
            .iter()
            .position(|d| d.owner_id.as_ref() == Some(id))
            .unwrap_or(0)
    }

    /// Index of device `id`.
    pub(crate) fn device_index(&self, id: &str) -> usize {
        self.devices.iter().position(|d| d.id == id).unwrap_or(0)
    }

    /// Id of the callflow whose first module is `module` (and, if given, targets `target`).
    pub(crate) fn callflow(&self, module: &str, target: Option<&str>) -> &str {
        self.callflows
            .iter()
            .find(|c| c.module == module && (target.is_none() || c.target_id.as_deref() == target))
            .map(|c| c.id.as_str())
            .unwrap_or("")
    }

    /// Internal caller id of device `d`: the owner's name and extension, else the device's
    /// label and SIP username.
    pub(crate) fn internal_cid(&self, d: usize) -> (String, String) {
        match self.owner(d) {
            Some(u) => (
                format!("{} {}", u.first_name, u.last_name),
                u.extension.clone(),
            ),
            None => {
                let dev = &self.devices[d];
                let label = dev.name.split_once(") ").map_or(dev.name.as_str(), |x| x.1);
                (label.to_owned(), dev.username.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_deterministic_and_consistent() {
        let a = Pbx::demo(DEMO_SEED);
        assert_eq!(a, Pbx::demo(DEMO_SEED));
        assert_ne!(a.accounts[0].id, Pbx::demo(1).accounts[0].id);
        for acct in &a.accounts {
            assert_eq!(acct.id.len(), 32);
            assert_eq!(acct.dids.len(), DID_DIRECT + acct.users.len());
            for did in &acct.dids {
                assert!(acct
                    .callflows
                    .iter()
                    .any(|c| c.id == did.callflow_id && c.numbers.contains(&did.number)));
            }
            for u in 0..acct.users.len() {
                let d = acct.device_of_user(u);
                assert_eq!(acct.owner(d).map(|o| &o.id), Some(&acct.users[u].id));
            }
            assert_eq!(
                acct.devices
                    .iter()
                    .filter(|d| d.call_forward.is_some())
                    .count(),
                1
            );
        }
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json["accounts"][0]["devices"][0]["name"],
            "(T54W) Front Desk"
        );
    }
}
