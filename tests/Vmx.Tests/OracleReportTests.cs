using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Vmx.Tests;

public sealed class OracleReportTests
{
    [Fact]
    public void Parse_ReadsEveryRecordKind()
    {
        var report = OracleReport.Parse("""
            Bochs banner
            HELLO eptfuzz-vmx 1
            CPU 80000008 0000000000003028
            MSR 48c 00000f0106334141
            VMX ready
            P 0000000000000002 0000000000000030 000000000000018a 0000000000001008 0000000000001008 0 0 0 0000008000000020
            F 0000000000000003 0000000000000007
            E 0000000000000005 0000000000404337
            END
            """);
        Assert.Null(report.Problem);
        Assert.True(report.VmxReady);
        Assert.Equal(0x3028UL, report.Cpuid[(0x80000008, 0)]);
        Assert.Equal(0x00000f0106334141UL, report.Msrs[0x48C]);
        Assert.Equal(48, report.Exits[2].BasicReason);
        Assert.Equal(0x18aUL, report.Exits[2].Qualification);
        Assert.Equal(7u, report.EntryFailures[3]);
        Assert.Equal(0x404337UL, report.Dumps[5]);
    }

    [Fact]
    public void Parse_WithoutEndMarker_IsAProblem()
    {
        var report = OracleReport.Parse("HELLO eptfuzz-vmx 1\nVMX ready\n");
        Assert.Contains("no END", report.Problem);
    }

    [Fact]
    public void Parse_HostFault_IsAProblem()
    {
        var report = OracleReport.Parse("HELLO eptfuzz-vmx 1\nHOSTFAULT 000000000000000d 0 0 0\n");
        Assert.Contains("HOSTFAULT", report.Problem);
    }

    [Fact]
    public void Parse_NothingFromTheKernel_IsABootFailure()
    {
        Assert.Contains("HELLO", OracleReport.Parse("BOOTFAIL disk read\n").Problem);
    }
}
