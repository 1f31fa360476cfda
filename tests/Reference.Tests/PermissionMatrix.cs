using EptFuzz.Reference;
using EptFuzz.Reference.Rules;
using static EptFuzz.Reference.Tests.Expect;
using static EptFuzz.Reference.Tests.Scenario;

namespace EptFuzz.Reference.Tests;

/// <summary>
/// Every R/W/X/XU combination, at every kind of EPT entry, for a read, a write, a supervisor-mode
/// fetch and a user-mode fetch, with MBEC on and off and with execute-only support on and off.
/// The other entries of the walk grant everything, so the tested entry alone decides.
/// The expected outcome is the SDM's rule written out once, independently of the model:
/// EPT-PRESENT-1, EPT-MISCONFIG-1/2/3, EPT-VIOL-2/3/4, EPT-MBEC-4, EPT-EXITQ-1.
/// </summary>
internal static class PermissionMatrix
{
    // The final GPA sits in PML5 slot 1 / PML4 slot 1, apart from the guest tables (slot 0), and is 1 GB aligned.
    private const ulong Gla = 0x4000_0000;

    private enum Probe
    {
        Read,
        Write,
        SupervisorFetch,
        UserFetch,
    }

    private sealed record Position(string Name, int Levels, Level Level, PageSize Size);

    private static readonly Position[] Positions =
    [
        new("Pml5e", 5, Level.Pml5e, PageSize.Size4K),
        new("Pml4e", 4, Level.Pml4e, PageSize.Size4K),
        new("Pdpte", 4, Level.Pdpte, PageSize.Size4K),
        new("Pde", 4, Level.Pde, PageSize.Size4K),
        new("Pte", 4, Level.Pte, PageSize.Size4K),
        new("Pdpte1G", 4, Level.Pdpte, PageSize.Size1G),
        new("Pde2M", 4, Level.Pde, PageSize.Size2M),
    ];

    public static IEnumerable<ModelCase> Rows()
    {
        foreach (Position position in Positions)
        {
            ulong gpa = position.Levels == 5 ? 0x1_0000_4000_0000UL : 0x80_4000_0000UL;
            const ulong hpa = 0x1_4000_0000;
            for (int combination = 0; combination < 16; combination++)
            {
                ulong bits = ((ulong)combination & Rwx) | ((combination & 8) != 0 ? XU : 0UL);
                foreach (bool mbec in new[] { false, true })
                {
                    foreach (bool executeOnly in new[] { false, true })
                    {
                        var capabilities = new ProcessorCapabilities
                        {
                            MaxPhysicalAddressWidth = 52, ExecuteOnly = executeOnly, ModeBasedExecuteControl = mbec, PageWalkLength5 = true,
                        };
                        foreach (Probe probe in Enum.GetValues<Probe>())
                        {
                            var scenario = new Scenario(position.Levels, mbec: mbec, capabilities: capabilities)
                                .Map(gpa, hpa, position.Size)
                                .WithGuestPaging()
                                .GuestMap(Gla, gpa, GP | GRW);
                            scenario.EditEntry(gpa, position.Level, set: bits, clear: Rwx | XU);

                            GuestAccess access = probe switch
                            {
                                Probe.Read => ReadAt(gpa),
                                Probe.Write => WriteAt(gpa),
                                Probe.UserFetch => FetchAt(gpa),
                                _ => Linear(AccessType.InstructionFetch, Gla, cpl: 0),
                            };
                            (AccessOutcome expected, RuleId rule, string outcome) = Expected(bits, probe, mbec, executeOnly, gpa, hpa, position.Size, access.Linear ? Gla : gpa);
                            string name = $"{position.Name}_{Text(bits)}_{probe}_{(mbec ? "Mbec" : "NoMbec")}_{(executeOnly ? "XoCap" : "NoXoCap")}_{outcome}";
                            yield return new ModelCase(name, scenario, access, expected, rule);
                        }
                    }
                }
            }
        }
    }

    private static (AccessOutcome, RuleId, string) Expected(ulong bits, Probe probe, bool mbec, bool executeOnly, ulong gpa, ulong hpa, PageSize size, ulong gla)
    {
        bool r = (bits & R) != 0, w = (bits & W) != 0, x = (bits & X) != 0, xu = (bits & XU) != 0;
        ulong kind = probe switch
        {
            Probe.Read => Read,
            Probe.Write => Write,
            _ => Fetch,
        };

        // Not present: bits 2:0 clear, and bit 10 too when MBEC is on.
        if (!r && !w && !x && !(mbec && xu))
        {
            return (Violation(gpa, gla, kind | GlaValid | Final), RuleId.EptViol1, "Violation");
        }

        if (!r && w)
        {
            return (Misconfig(gpa), RuleId.EptMisconfig1, "Misconfig");
        }

        if (!r && x && !executeOnly)
        {
            return (Misconfig(gpa), RuleId.EptMisconfig2, "Misconfig");
        }

        if (mbec && !r && xu && !executeOnly)
        {
            return (Misconfig(gpa), RuleId.EptMisconfig3, "Misconfig");
        }

        bool allowed = probe switch
        {
            Probe.Read => r,
            Probe.Write => w,
            Probe.SupervisorFetch => x,
            _ => mbec ? xu : x,
        };
        var permissions = (r ? EptPermissions.ReadAccess : 0) | (w ? EptPermissions.WriteAccess : 0)
            | (x ? EptPermissions.ExecuteAccess : 0) | (mbec && xu ? EptPermissions.UserModeExecute : 0);
        if (allowed)
        {
            return (Translated(gpa, hpa, size, MemoryType.WB, permissions), RuleId.EptAccess1, "Translated");
        }

        ulong qualification = kind | GlaValid | Final
            | (r ? Readable : 0) | (w ? Writable : 0) | (x ? Executable : 0) | (mbec && xu ? UserExecutable : 0);
        RuleId rule = probe switch
        {
            Probe.Read => RuleId.EptViol2,
            Probe.Write => RuleId.EptViol3,
            _ when mbec => RuleId.EptMbec4,
            _ => RuleId.EptViol4,
        };
        return (Violation(gpa, gla, qualification), rule, "Violation");
    }

    private static string Text(ulong bits) =>
        $"{((bits & R) != 0 ? 'R' : '-')}{((bits & W) != 0 ? 'W' : '-')}{((bits & X) != 0 ? 'X' : '-')}{((bits & XU) != 0 ? "XU" : "--")}";
}
