using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>The report used when nothing had to run (every probe known or unsupported).</summary>
internal static class OracleReportEmpty
{
    public static readonly OracleReport Value = OracleReport.Parse("HELLO eptfuzz-vmx 1\nVMX ready\nEND\n");
}
