//! [`Statistics`]: what a cgroup has used, typed, plus every raw statistics file.
//!
//! The typed fields are in cgroup v2 units (bytes, microseconds) whatever the hierarchy; the v1
//! modules convert (`cpuacct` nanoseconds and clock ticks, `throttled_time` nanoseconds). A
//! field is `None` when this machine's cgroups do not provide it.
//!
//! [`Statistics::encode`] / [`Statistics::decode`] are the wire form the keeper uses to hand
//! the final statistics (read just before the cgroup is removed) to the owner.

use std::collections::BTreeMap;
use std::io;

/// One line of a pressure (PSI) file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    /// Share of time stalled over the last 10 s, in percent.
    pub avg10: f64,
    /// Over the last 60 s.
    pub avg60: f64,
    /// Over the last 300 s.
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_usec: u64,
}

/// A pressure file (`cpu.pressure`, `memory.pressure`, `io.pressure`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// Some tasks stalled.
    pub some: Option<PressureLine>,
    /// All tasks stalled.
    pub full: Option<PressureLine>,
}

/// What a cgroup has used.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Statistics {
    /// Memory in use now, bytes (`memory.current`; v1 `memory.usage_in_bytes`).
    pub memory_current: Option<u64>,
    /// Highest memory use, bytes (`memory.peak`; v1 `memory.max_usage_in_bytes`).
    pub memory_peak: Option<u64>,
    /// Swap in use now, bytes (`memory.swap.current`).
    pub memory_swap_current: Option<u64>,
    /// Times the limit was hit hard enough to invoke the OOM killer (`memory.events` `oom`;
    /// v1: `memory.failcnt` counts limit hits instead, so this stays `None`).
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer (`memory.events` `oom_kill`; v1 `memory.oom_control`).
    pub oom_kill: Option<u64>,
    /// Total CPU time, microseconds (`cpu.stat` `usage_usec`; v1 `cpuacct.usage`).
    pub cpu_usage_usec: Option<u64>,
    /// User CPU time, microseconds.
    pub cpu_user_usec: Option<u64>,
    /// System CPU time, microseconds.
    pub cpu_system_usec: Option<u64>,
    /// Enforcement periods that elapsed (`nr_periods`).
    pub cpu_nr_periods: Option<u64>,
    /// Periods in which the cgroup was throttled (`nr_throttled`).
    pub cpu_nr_throttled: Option<u64>,
    /// Time spent throttled, microseconds (`throttled_usec`; v1 `throttled_time` / 1000).
    pub cpu_throttled_usec: Option<u64>,
    /// Processes and threads now (`pids.current`).
    pub pids_current: Option<u64>,
    /// Most processes and threads at once (`pids.peak`).
    pub pids_peak: Option<u64>,
    /// Forks refused by `pids.max` (`pids.events` `max`).
    pub pids_limit_hits: Option<u64>,
    /// Pressure files by resource (`cpu`, `memory`, `io`).
    pub pressure: BTreeMap<String, Pressure>,
    /// Every statistics file read, raw, by name. v1 files are prefixed by their hierarchy
    /// (`memory/memory.stat`) so they cannot collide with the v2 files of a hybrid machine.
    pub raw: BTreeMap<String, String>,
}

/// Wire format version of [`Statistics::encode`].
const WIRE_VERSION: u8 = 1;

/// The typed counters on the wire, by id. Ids are never reused; a decoder skips ids it does
/// not know, so a newer keeper can add counters.
fn counters(s: &Statistics) -> [(u8, Option<u64>); 14] {
    [
        (1, s.memory_current),
        (2, s.memory_peak),
        (3, s.memory_swap_current),
        (4, s.oom),
        (5, s.oom_kill),
        (6, s.cpu_usage_usec),
        (7, s.cpu_user_usec),
        (8, s.cpu_system_usec),
        (9, s.cpu_nr_periods),
        (10, s.cpu_nr_throttled),
        (11, s.cpu_throttled_usec),
        (12, s.pids_current),
        (13, s.pids_peak),
        (14, s.pids_limit_hits),
    ]
}

fn counter_mut(s: &mut Statistics, id: u8) -> Option<&mut Option<u64>> {
    Some(match id {
        1 => &mut s.memory_current,
        2 => &mut s.memory_peak,
        3 => &mut s.memory_swap_current,
        4 => &mut s.oom,
        5 => &mut s.oom_kill,
        6 => &mut s.cpu_usage_usec,
        7 => &mut s.cpu_user_usec,
        8 => &mut s.cpu_system_usec,
        9 => &mut s.cpu_nr_periods,
        10 => &mut s.cpu_nr_throttled,
        11 => &mut s.cpu_throttled_usec,
        12 => &mut s.pids_current,
        13 => &mut s.pids_peak,
        14 => &mut s.pids_limit_hits,
        _ => return None,
    })
}

impl Statistics {
    /// The wire form: a version byte; the present counters as `(id u8, value u64)`; the
    /// pressure files; the raw files (little-endian, `u32` lengths). With `raw` false the raw
    /// files are left out (to fit a bounded message).
    pub fn encode(&self, raw: bool) -> Vec<u8> {
        fn put_str(w: &mut Vec<u8>, s: &str) {
            w.extend_from_slice(&(s.len() as u32).to_le_bytes());
            w.extend_from_slice(s.as_bytes());
        }
        fn put_line(w: &mut Vec<u8>, l: &PressureLine) {
            for f in [l.avg10, l.avg60, l.avg300] {
                w.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            w.extend_from_slice(&l.total_usec.to_le_bytes());
        }
        let mut w = vec![WIRE_VERSION];
        let present: Vec<(u8, u64)> = counters(self)
            .into_iter()
            .filter_map(|(id, v)| Some((id, v?)))
            .collect();
        w.push(present.len() as u8);
        for (id, v) in present {
            w.push(id);
            w.extend_from_slice(&v.to_le_bytes());
        }
        w.extend_from_slice(&(self.pressure.len() as u32).to_le_bytes());
        for (name, p) in &self.pressure {
            put_str(&mut w, name);
            w.push(u8::from(p.some.is_some()) | (u8::from(p.full.is_some()) << 1));
            for l in p.some.iter().chain(p.full.iter()) {
                put_line(&mut w, l);
            }
        }
        let raw_files: Vec<(&String, &String)> = if raw {
            self.raw.iter().collect()
        } else {
            Vec::new()
        };
        w.extend_from_slice(&(raw_files.len() as u32).to_le_bytes());
        for (k, v) in raw_files {
            put_str(&mut w, k);
            put_str(&mut w, v);
        }
        w
    }

    /// Decodes [`Statistics::encode`]. Truncated, overlong or otherwise malformed input is an
    /// `InvalidData` error, never a panic; unknown counter ids are skipped.
    pub fn decode(buf: &[u8]) -> io::Result<Statistics> {
        let mut r = WireReader(buf);
        if r.u8()? != WIRE_VERSION {
            return Err(wire_error("unknown statistics version"));
        }
        let mut s = Statistics::default();
        for _ in 0..r.u8()? {
            let id = r.u8()?;
            let v = r.u64()?;
            if let Some(slot) = counter_mut(&mut s, id) {
                *slot = Some(v);
            }
        }
        let n = r.count()?;
        for _ in 0..n {
            let name = r.string()?;
            let flags = r.u8()?;
            if flags > 3 {
                return Err(wire_error("bad pressure flags"));
            }
            let mut p = Pressure::default();
            if flags & 1 != 0 {
                p.some = Some(r.line()?);
            }
            if flags & 2 != 0 {
                p.full = Some(r.line()?);
            }
            s.pressure.insert(name, p);
        }
        let n = r.count()?;
        for _ in 0..n {
            let k = r.string()?;
            let v = r.string()?;
            s.raw.insert(k, v);
        }
        if !r.0.is_empty() {
            return Err(wire_error("trailing bytes after the statistics"));
        }
        Ok(s)
    }
}

fn wire_error(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A bounds-checked cursor: every read past the end is an error.
struct WireReader<'a>(&'a [u8]);

impl WireReader<'_> {
    fn take<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| wire_error("truncated statistics"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn f64(&mut self) -> io::Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// An element count; each element takes at least 4 bytes, so a count the rest of the
    /// buffer cannot hold is refused before any work.
    fn count(&mut self) -> io::Result<usize> {
        let n = self.u32()? as usize;
        if n > self.0.len() / 4 {
            return Err(wire_error("count larger than the statistics"));
        }
        Ok(n)
    }
    fn string(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(wire_error("truncated statistics"));
        }
        let (text, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(text.to_vec()).map_err(|_| wire_error("statistics text is not UTF-8"))
    }
    fn line(&mut self) -> io::Result<PressureLine> {
        Ok(PressureLine {
            avg10: self.f64()?,
            avg60: self.f64()?,
            avg300: self.f64()?,
            total_usec: self.u64()?,
        })
    }
}

/// A flat-keyed file (`key value` lines, e.g. `cpu.stat`, `memory.events`). Lines whose value
/// is not an integer are skipped.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A pressure file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and a `full` line.
pub fn parse_pressure(text: &str) -> Pressure {
    let mut p = Pressure::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let kind = words.next();
        let mut l = PressureLine::default();
        let mut any = false;
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            match k {
                "avg10" => l.avg10 = v.parse().unwrap_or_default(),
                "avg60" => l.avg60 = v.parse().unwrap_or_default(),
                "avg300" => l.avg300 = v.parse().unwrap_or_default(),
                "total" => l.total_usec = v.parse().unwrap_or_default(),
                _ => continue,
            }
            any = true;
        }
        match (kind, any) {
            (Some("some"), true) => p.some = Some(l),
            (Some("full"), true) => p.full = Some(l),
            _ => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_skips_what_is_not_a_number() {
        let m = parse_flat_keyed("usage_usec 123\nuser_usec 100\nbogus x\n\nsystem_usec 23\n");
        assert_eq!(m["usage_usec"], 123);
        assert_eq!(m["system_usec"], 23);
        assert!(!m.contains_key("bogus"));
    }

    #[test]
    fn pressure_lines() {
        let p = parse_pressure(
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
        assert_eq!(p.some.unwrap().avg10, 1.5);
        assert_eq!(p.some.unwrap().total_usec, 1234);
        assert_eq!(p.full.unwrap().total_usec, 7);
        assert_eq!(parse_pressure("junk\n"), Pressure::default());
    }

    fn sample() -> Statistics {
        let mut s = Statistics {
            memory_peak: Some(33 << 20),
            oom_kill: Some(1),
            cpu_usage_usec: Some(0),
            pids_limit_hits: Some(u64::MAX),
            ..Statistics::default()
        };
        s.pressure.insert(
            "memory".into(),
            parse_pressure("some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\n"),
        );
        s.pressure.insert(
            "cpu".into(),
            parse_pressure(
                "some avg10=0 avg60=0 avg300=0 total=1\nfull avg10=0 avg60=0 avg300=0 total=2\n",
            ),
        );
        s.raw
            .insert("memory.events".into(), "oom 1\noom_kill 1\n".into());
        s.raw
            .insert("memory/memory.stat".into(), "cache 0\nrss 4096\n".into());
        s
    }

    #[test]
    fn wire_form_round_trips() {
        let s = sample();
        assert_eq!(Statistics::decode(&s.encode(true)).unwrap(), s);
        let lean = Statistics::decode(&s.encode(false)).unwrap();
        assert!(lean.raw.is_empty());
        assert_eq!(lean.memory_peak, s.memory_peak);
        assert_eq!(lean.pressure, s.pressure);
        let empty = Statistics::default();
        assert_eq!(Statistics::decode(&empty.encode(true)).unwrap(), empty);
    }

    #[test]
    fn truncated_or_garbled_wire_form_is_an_error_not_a_panic() {
        let buf = sample().encode(true);
        for n in 0..buf.len() {
            assert!(
                Statistics::decode(&buf[..n]).is_err(),
                "prefix of {n} bytes"
            );
        }
        let mut long = buf.clone();
        long.push(0);
        assert!(Statistics::decode(&long).is_err(), "trailing byte");
        // Every single-byte corruption either decodes to something or is an error.
        for i in 0..buf.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = buf.clone();
                b[i] = v;
                let _ = Statistics::decode(&b);
            }
        }
        // A huge declared count or length is refused without allocating for it.
        let mut huge = vec![WIRE_VERSION, 0];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Statistics::decode(&huge).is_err());
        let mut huge = vec![WIRE_VERSION, 0, 1, 0, 0, 0];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Statistics::decode(&huge).is_err());
    }

    #[test]
    fn unknown_counter_ids_are_skipped() {
        let mut buf = vec![WIRE_VERSION, 2, 200];
        buf.extend_from_slice(&7u64.to_le_bytes());
        buf.push(2);
        buf.extend_from_slice(&9u64.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        let s = Statistics::decode(&buf).unwrap();
        assert_eq!(s.memory_peak, Some(9));
    }
}
