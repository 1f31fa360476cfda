using EptFuzz.Contract;

namespace EptFuzz.Harness.Tests.Fuzzing.Support;

/// <summary>
/// A small EPT translator for the fuzzer's tests: it walks the tables in its own copy of host
/// memory and reports rule ids, so that coverage, campaigns and the reducer can be tested before
/// (and independently of) the reference model. Guest-linear accesses with paging on are
/// unsupported. With <see cref="Planted"/> set it carries a deliberate bug: a write to a 2 MB
/// page whose PDE index is 511 ignores a missing write permission.
/// </summary>
internal sealed class WalkingTarget(string name, bool planted = false) : ITarget
{
    public static readonly string[] Rules =
    [
        "WALK-PML5", "WALK-PML4", "WALK-PDPT", "WALK-PD", "WALK-PT",
        "LEAF-4K", "LEAF-2M", "LEAF-1G",
        "VIOL-NOT-PRESENT", "VIOL-READ", "VIOL-WRITE", "VIOL-FETCH",
        "MISCONFIG-WRITE-NO-READ", "MISCONFIG-EXEC-ONLY", "MISCONFIG-RESERVED", "MISCONFIG-MEMTYPE", "MISCONFIG-LARGE-PAGE",
        "OK-READ", "OK-WRITE", "OK-FETCH", "MBEC-USER-EXEC",
        "VMENTRY-OK", "VMENTRY-FAIL", "ENTRY-REACHED", "ENTRY-NOT-REACHED", "OUT-OF-WALK",
    ];

    public string Name { get; } = name;

    public bool Planted { get; } = planted;

    public TargetTraits Traits => TargetTraits.Immediate | TargetTraits.Walk | TargetTraits.Entries | TargetTraits.VmEntry | TargetTraits.MemoryType;

    public IReadOnlyList<string> RuleNames => Rules;

    public ITargetSession Open(CpuCapabilities cpu) => new Session(this, cpu);

    private static int Rule(string name) => Array.IndexOf(Rules, name);

    private sealed class Session(WalkingTarget target, CpuCapabilities cpu) : ITargetSession
    {
        private const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;
        private readonly Dictionary<ulong, ulong> memory = new();
        private ulong eptp;
        private VmxControls controls;
        private GuestPaging paging = GuestPaging.Off;

        public string? UnsupportedReason => null;

        public void SetEptp(ulong value) => eptp = value;

        public void SetControls(VmxControls value) => controls = value;

        public void SetGuestPaging(GuestPaging value) => paging = value;

        public void Write(MemoryWrite write) => memory[write.Address.Value] = write.Value;

        public void Invept(InveptType type)
        {
        }

        public IReadOnlyDictionary<int, Observation> Finish() => new Dictionary<int, Observation>();

        public void Dispose()
        {
        }

        public Observation? Submit(in Probe probe)
        {
            RuleBits rules = default;
            bool entryOk = VmEntryOk();
            if (probe.Kind == ProbeKind.VmEntry)
            {
                return new Observation { Kind = OutcomeKind.VmEntry, VmEntryOk = entryOk, Rules = rules.With(Rule(entryOk ? "VMENTRY-OK" : "VMENTRY-FAIL")) };
            }

            if (probe.Kind == ProbeKind.Entry)
            {
                return Entry(probe.EntryGpa.Value, probe.EntryLevel);
            }

            if (probe.Access.Linear && paging.Enabled)
            {
                return Observation.Unsupported("guest paging is not modelled by the test translator");
            }

            if (!entryOk)
            {
                return new Observation { Kind = OutcomeKind.NoVmEntry };
            }

            return Translate(probe.Access.Kind, probe.Access.Address);
        }

        private int WalkLength => (int)((eptp >> 3) & 7) + 1;

        private bool VmEntryOk()
        {
            ulong mt = eptp & 7;
            bool mtOk = (mt == 0 && cpu.EptpUc) || (mt == 6 && cpu.EptpWb);
            bool walkOk = WalkLength == 4 || (WalkLength == 5 && cpu.Walk5);
            bool reservedOk = (eptp & 0xF80UL) == 0 && (eptp >> cpu.MaxPhyAddr) == 0;
            bool adOk = (eptp & 0x40) == 0 || cpu.AccessedDirty;
            return mtOk && walkOk && reservedOk && adOk && (!controls.Mbec || cpu.Mbec);
        }

        private Observation Entry(ulong gpa, EptLevel level)
        {
            ulong table = eptp & AddressMask;
            for (int l = WalkLength; l >= 1; l--)
            {
                ulong address = table + (((gpa >> (12 + (9 * (l - 1)))) & 511) * 8);
                ulong value = memory.GetValueOrDefault(address);
                if (l == (int)level)
                {
                    return new Observation { Kind = OutcomeKind.Entry, EntryValue = value, Rules = default(RuleBits).With(Rule("ENTRY-REACHED")) };
                }

                if ((value & 7) == 0 || (l <= 3 && (value & 0x80) != 0))
                {
                    break;
                }

                table = value & AddressMask;
            }

            return new Observation { Kind = OutcomeKind.EntryNotReached, Rules = default(RuleBits).With(Rule("ENTRY-NOT-REACHED")) };
        }

        private Observation Translate(AccessKind kind, ulong gpa)
        {
            RuleBits rules = default;
            var walk = new List<WalkEntry>(5);
            ulong accessBits = kind switch
            {
                AccessKind.Read => 1UL,
                AccessKind.Write => 2UL,
                _ => 4UL,
            };
            if ((gpa >> (12 + (9 * WalkLength))) != 0 || (gpa >> cpu.MaxPhyAddr) != 0)
            {
                // Beyond the walk or MAXPHYADDR: nothing translates it.
                return new Observation { Kind = OutcomeKind.EptViolation, Gpa = new Gpa(gpa), Qualification = accessBits, Rules = rules.With(Rule("OUT-OF-WALK")) };
            }

            ulong table = eptp & AddressMask;
            ulong perms = 0xF;
            for (int l = WalkLength; l >= 1; l--)
            {
                ulong address = table + (((gpa >> (12 + (9 * (l - 1)))) & 511) * 8);
                ulong value = memory.GetValueOrDefault(address);
                walk.Add(new WalkEntry(WalkStructure.Ept, (EptLevel)(byte)l, new Hpa(address), value, gpa));
                rules = rules.With(Rule(Rules[5 - l]));
                bool userExecute = controls.Mbec && (value & 0x400) != 0;
                if ((value & 7) == 0 && !userExecute)
                {
                    return Violation(gpa, accessBits, walk, rules.With(Rule("VIOL-NOT-PRESENT")));
                }

                bool large = (value & 0x80) != 0;
                if ((value & 3) == 2)
                {
                    return Misconfig(gpa, walk, rules.With(Rule("MISCONFIG-WRITE-NO-READ")));
                }

                if ((value & 7) == 4 && !cpu.ExecuteOnly)
                {
                    return Misconfig(gpa, walk, rules.With(Rule("MISCONFIG-EXEC-ONLY")));
                }

                if (((value & AddressMask) >> cpu.MaxPhyAddr) != 0)
                {
                    return Misconfig(gpa, walk, rules.With(Rule("MISCONFIG-RESERVED")));
                }

                bool leaf = l == 1 || (large && ((l == 2 && cpu.Page2M) || (l == 3 && cpu.Page1G)));
                if (!leaf && large)
                {
                    return Misconfig(gpa, walk, rules.With(Rule("MISCONFIG-LARGE-PAGE")));
                }

                if (!leaf && (value & 0x78) != 0)
                {
                    return Misconfig(gpa, walk, rules.With(Rule("MISCONFIG-RESERVED")));
                }

                ulong entryPerms = (value & 7) | (((value >> 10) & 1) << 3);
                perms &= entryPerms;
                if (!leaf)
                {
                    table = value & AddressMask;
                    continue;
                }

                ulong mt = (value >> 3) & 7;
                if (mt is 2 or 3 or 7)
                {
                    return Misconfig(gpa, walk, rules.With(Rule("MISCONFIG-MEMTYPE")));
                }

                int shift = 12 + (9 * (l - 1));
                ulong pageMask = (1UL << shift) - 1;
                if (l > 1 && (value & AddressMask & pageMask) != 0)
                {
                    return Misconfig(gpa, walk, rules.With(Rule("MISCONFIG-RESERVED")));
                }

                rules = rules.With(Rule(l switch { 1 => "LEAF-4K", 2 => "LEAF-2M", _ => "LEAF-1G" }));
                bool fetchUser = kind == AccessKind.Fetch && controls.Mbec;
                bool allowed = kind switch
                {
                    AccessKind.Read => (perms & 1) != 0,
                    AccessKind.Write => (perms & 2) != 0,
                    _ => fetchUser ? (perms & 8) != 0 : (perms & 4) != 0,
                };
                if (fetchUser)
                {
                    rules = rules.With(Rule("MBEC-USER-EXEC"));
                }

                if (!allowed && target.Planted && kind == AccessKind.Write && l == 2 && ((gpa >> 21) & 511) == 511 && (perms & 1) != 0)
                {
                    allowed = true; // the planted bug
                }

                if (!allowed)
                {
                    string rule = kind switch
                    {
                        AccessKind.Read => "VIOL-READ",
                        AccessKind.Write => "VIOL-WRITE",
                        _ => "VIOL-FETCH",
                    };
                    ulong qual = accessBits | ((perms & 7) << 3) | (controls.Mbec ? ((perms >> 3) & 1) << 6 : 0);
                    return new Observation { Kind = OutcomeKind.EptViolation, Gpa = new Gpa(gpa), Qualification = qual, Walk = walk, Rules = rules.With(Rule(rule)) };
                }

                string ok = kind switch
                {
                    AccessKind.Read => "OK-READ",
                    AccessKind.Write => "OK-WRITE",
                    _ => "OK-FETCH",
                };
                return new Observation
                {
                    Kind = OutcomeKind.Translated,
                    Hpa = new Hpa((value & AddressMask & ~pageMask) | (gpa & pageMask)),
                    PageSize = (PageSize)(byte)l,
                    MemoryType = (MemoryType)mt,
                    Permissions = (EptPermissions)perms,
                    Gpa = new Gpa(gpa),
                    Walk = walk,
                    Rules = rules.With(Rule(ok)),
                };
            }

            return Violation(gpa, accessBits, walk, rules.With(Rule("VIOL-NOT-PRESENT")));
        }

        private static Observation Violation(ulong gpa, ulong accessBits, List<WalkEntry> walk, RuleBits rules) =>
            new() { Kind = OutcomeKind.EptViolation, Gpa = new Gpa(gpa), Qualification = accessBits, Walk = walk, Rules = rules };

        private static Observation Misconfig(ulong gpa, List<WalkEntry> walk, RuleBits rules) =>
            new() { Kind = OutcomeKind.EptMisconfiguration, Gpa = new Gpa(gpa), Walk = walk, Rules = rules };
    }
}
