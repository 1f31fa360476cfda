using System.Globalization;

namespace EptFuzz.Targets.Vmx.Runner;

/// <summary>One guest exit as the kernel printed it (a "P" line).</summary>
public readonly record struct ExitRecord(ulong Step, uint Reason, ulong Qualification, ulong GuestPhysical, ulong GuestLinear, uint InterruptionInfo, uint InterruptionErrorCode, ulong Rbx, ulong GuestRip)
{
    public ushort BasicReason => (ushort)Reason;
    public bool EntryFailure => (Reason & 0x8000_0000) != 0;
}

/// <summary>
/// The kernel's output (the port 0xE9 line protocol, see HostKernel) parsed. Never throws on bad
/// input: a malformed or incomplete stream is described by <see cref="Problem"/>.
/// </summary>
public sealed class OracleReport
{
    private OracleReport()
    {
    }

    public bool Hello { get; private set; }
    public bool Ended { get; private set; }
    /// <summary>NOVMX, NOEPT or VMXLOCKED when the processor cannot run the oracle.</summary>
    public string? NoVmx { get; private set; }
    public bool VmxReady { get; private set; }
    /// <summary>HOSTFAULT/VMFAIL lines and unparsable lines.</summary>
    public string? Problem { get; private set; }
    public Dictionary<(uint Leaf, int Index), ulong> Cpuid { get; } = [];
    public Dictionary<uint, ulong> Msrs { get; } = [];
    public Dictionary<ulong, ExitRecord> Exits { get; } = [];
    /// <summary>VM-instruction error of a failed VMLAUNCH/VMRESUME, by step.</summary>
    public Dictionary<ulong, uint> EntryFailures { get; } = [];
    public Dictionary<ulong, ulong> Dumps { get; } = [];

    public static OracleReport Parse(string output)
    {
        var report = new OracleReport();
        foreach (string raw in output.Split('\n'))
        {
            string line = raw.TrimEnd('\r', ' ');
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 0)
            {
                continue;
            }

            if (!report.Hello)
            {
                // Bochs prints its banner before the guest's first byte.
                report.Hello = line.StartsWith("HELLO eptfuzz-vmx", StringComparison.Ordinal);
                continue;
            }

            switch (f[0])
            {
                case "CPU" when f.Length >= 3 && TryHexes(f, 1, out var cpu):
                    for (int i = 1; i < cpu.Length; i++)
                    {
                        report.Cpuid[((uint)cpu[0], i - 1)] = cpu[i];
                    }

                    break;
                case "MSR" when f.Length == 3 && TryHexes(f, 1, out var msr):
                    report.Msrs[(uint)msr[0]] = msr[1];
                    break;
                case "NOVMX" or "NOEPT" or "VMXLOCKED":
                    report.NoVmx = f[0];
                    break;
                case "VMX" when line == "VMX ready":
                    report.VmxReady = true;
                    break;
                case "P" when f.Length == 10 && TryHexes(f, 1, out var p):
                    report.Exits[p[0]] = new ExitRecord(p[0], (uint)p[1], p[2], p[3], p[4], (uint)p[5], (uint)p[6], p[7], p[8]);
                    break;
                case "F" when f.Length == 3 && TryHexes(f, 1, out var e):
                    report.EntryFailures[e[0]] = (uint)e[1];
                    break;
                case "E" when f.Length == 3 && TryHexes(f, 1, out var d):
                    report.Dumps[d[0]] = d[1];
                    break;
                case "END":
                    report.Ended = true;
                    break;
                default:
                    report.Problem ??= $"unexpected line from the kernel: \"{line}\"";
                    break;
            }

            if (report.Ended)
            {
                break;
            }
        }

        if (!report.Hello)
        {
            report.Problem ??= "the kernel never said HELLO (boot failed)";
        }
        else if (!report.Ended)
        {
            report.Problem ??= "no END marker (the kernel stopped early)";
        }

        return report;
    }

    private static bool TryHexes(string[] fields, int start, out ulong[] values)
    {
        values = new ulong[fields.Length - start];
        for (int i = start; i < fields.Length; i++)
        {
            if (!ulong.TryParse(fields[i], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out values[i - start]))
            {
                return false;
            }
        }

        return true;
    }
}
