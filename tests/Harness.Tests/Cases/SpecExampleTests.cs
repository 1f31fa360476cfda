using EptFuzz.Contract;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Tests.Cases;

public sealed class SpecExampleTests
{
    [Fact]
    public void MinimizedReproducer_Parses_WithHeaderAndLines()
    {
        ParseResult result = CaseParser.Parse(SpecExamples.MinimizedReproducer, "repro.ept");

        Assert.True(result.Succeeded, result.ErrorText());
        EptCase c = result.Case;
        Assert.Equal(1, c.Version);
        Assert.Equal(
            [
                "found by: eptfuzz fuzz --seed 0x5eed --max-total-time 60 (generator 1)",
                "first divergence: step 5 (line 7): impl says ok hpa=0x40201000, model says violation qual=0x18a",
            ],
            c.HeaderComments.ToArray());
        Assert.Equal([4, 5, 6, 7, 8], c.Steps.Select(s => s.Line));
        Assert.Equal(new CpuStep(MaxPhyAddr: 46, Page1G: true, AccessedDirty: true), c.Steps[0]);
        Assert.Equal(new EptpStep(MemoryType: MemoryType.WB, WalkLength: 4, AccessedDirty: true), c.Steps[1]);
        Assert.Equal(new MapStep(new Gpa(0x200000), new Hpa(0x40200000), 2 << 20, EptPermissions.ReadAccess | EptPermissions.WriteAccess | EptPermissions.ExecuteAccess, MemoryType.WB), c.Steps[2]);
        Assert.Equal(new ProtectStep(new Gpa(0x201000), 4096, EptPermissions.ReadAccess), c.Steps[3]);
        Assert.Equal(
            AccessStep.Physical(AccessKind.Write, new Gpa(0x201000)) with { Expectation = Expect.Violation(0x18a, new Gpa(0x201000)) },
            c.Steps[4]);
        Assert.Equal(new SourcePosition(8, 1), c.Steps[4].Position);
        Assert.Equal(new SourcePosition(8, 23), c.Steps[4].Expectation!.Position);
    }

    [Fact]
    public void EveryFormOfTheSpec_Parses()
    {
        ParseResult result = CaseParser.Parse(SpecExamples.EveryForm, "every.ept");

        Assert.True(result.Succeeded, result.ErrorText());
        Assert.Equal(48, result.Case.Steps.Length);
        // Every verb of the spec occurs.
        string[] verbs = ["cpu", "eptp", "controls", "guest", "map", "unmap", "protect", "retype", "split", "merge", "memory",
            "identity-map", "invept", "edit", "poke", "gmap", "gedit", "read", "write", "fetch", "entry", "vmentry"];
        Assert.Equal(verbs.Order(), result.Case.Steps.Select(s => s.Verb).Distinct().Order());
    }

    [Fact]
    public void Defaults_AreTheSpecs()
    {
        EptCase c = CaseParser.Parse("eptcase 1\ncpu\neptp\ncontrols\nguest paging=4level cr3=0x1000 tables=0x2000-0x3000\nmap gpa=0 hpa=0 size=4K perm=r\n", "d.ept").Case!;

        Assert.Equal(CpuCapabilities.Default, ((CpuStep)c.Steps[0]).ToCapabilities());
        Assert.Equal(new EptpRequest(), ((EptpStep)c.Steps[1]).ToRequest());
        Assert.Equal(VmxControls.Default, ((ControlsStep)c.Steps[2]).ToControls());
        GuestPaging g = ((GuestStep)c.Steps[3]).ToGuestPaging();
        Assert.True(g.Enabled);
        Assert.True(g.Wp);
        Assert.False(g.Nxe);
        Assert.False(g.Smep);
        Assert.Equal(0x0007040600070406UL, g.Pat);
        Assert.Equal(MemoryType.WB, ((MapStep)c.Steps[4]).EffectiveMemoryType);
        Assert.Null(((MapStep)c.Steps[4]).MemoryType);
    }

    [Fact]
    public void Values_ReadAsTheSpecSays()
    {
        EptCase c = CaseParser.Parse(SpecExamples.EveryForm, "every.ept").Case!;

        var eptp = (EptpStep)c.Steps[3];
        Assert.Equal(0x10001eUL, eptp.Raw);
        var map = (MapStep)c.Steps[13];
        Assert.Equal(EptPermissions.All, map.Permissions);
        Assert.Equal(4096UL, map.Size);
        Assert.Equal(true, map.IgnorePat);
        Assert.Equal((MemoryType)7, ((MapStep)c.Steps[14]).MemoryType);
        Assert.Equal(ApiResult.Unaligned, ((ResultExpectation)c.Steps[14].Expectation!).Result);
        var edit = (EditStep)c.Steps[22];
        Assert.Equal(new EditStep(new Gpa(0x201000), EptLevel.Pte, 2, 1, new Hpa(0x7000)), edit with { Expectation = null });
        Assert.Equal(EptLevel.Pde, ((EditStep)c.Steps[23]).Level);
        var guest = (GuestStep)c.Steps[29];
        Assert.Equal(new Gpa(0x11000), guest.TablesStart);
        Assert.Equal(new Gpa(0x20000), guest.TablesEnd);
        var gmap = (GMapStep)c.Steps[30];
        Assert.Equal(GuestPagePermissions.All, gmap.Permissions);
        var fetch = (AccessStep)c.Steps[39];
        Assert.Equal(Access.ThroughPaging(AccessKind.Fetch, new Gva(0x400000), 3), fetch.ToAccess());
        Assert.Equal(Expect.PageFault(0x15), fetch.Expectation);
        Assert.Equal(Expect.Entry(false, false, 0x40200087), c.Steps[44].Expectation);
        Assert.Equal(Expect.VmEntry(false), c.Steps[47].Expectation);
    }
}
