using EptFuzz.Contract;
using EptFuzz.Harness.Comparing;

namespace EptFuzz.Harness.Tests.Comparing;

public sealed class ComparisonTests
{
    private const TargetTraits Full = TargetTraits.MemoryType | TargetTraits.AccessedDirtyWrites | TargetTraits.Mbec | TargetTraits.AdvancedExitInfo | TargetTraits.TranslatedGpa;
    private const TargetTraits Oracle = TargetTraits.None;

    private static Observation Violation(ulong qual) => new() { Kind = OutcomeKind.EptViolation, Qualification = qual, Gpa = new Gpa(0x1000), GuestLinearAddress = 0x1000, GuestLinearAddressValid = true };

    [Fact]
    public void DifferentKinds_Kind() =>
        Assert.Equal(Difference.Kind, ObservationComparer.Compare(Violation(0x181), Full, new Observation { Kind = OutcomeKind.Translated }, Full));

    [Fact]
    public void QualificationBit6_ComparedOnlyWhenBothModelMbec()
    {
        Assert.Equal(Difference.Qualification, ObservationComparer.Compare(Violation(0x181), Full, Violation(0x1c1), Full));
        Assert.Equal(Difference.None, ObservationComparer.Compare(Violation(0x181), Full, Violation(0x1c1), Oracle));
    }

    [Fact]
    public void AdvancedBits_ComparedOnlyWhenBothReportThem()
    {
        Assert.Equal(Difference.Qualification, ObservationComparer.Compare(Violation(0x381), Full, Violation(0x181), Full));
        Assert.Equal(Difference.None, ObservationComparer.Compare(Violation(0x381), Full, Violation(0x181), Oracle));
    }

    [Fact]
    public void MemoryType_ComparedOnlyWhenBothReportIt()
    {
        var a = new Observation { Kind = OutcomeKind.Translated, Hpa = new Hpa(0x1000), PageSize = PageSize.Size4K, MemoryType = MemoryType.WB };
        var b = a with { MemoryType = MemoryType.UC };
        Assert.Equal(Difference.MemoryType, ObservationComparer.Compare(a, Full, b, Full));
        Assert.Equal(Difference.None, ObservationComparer.Compare(a, Full, b, Oracle));
    }

    [Fact]
    public void FinalGpa_ComparedOnlyWhenBothReportIt()
    {
        var a = new Observation { Kind = OutcomeKind.Translated, Hpa = new Hpa(0x1000), PageSize = PageSize.Size4K, Gpa = new Gpa(0x2000) };
        var b = a with { Gpa = new Gpa(0x3000) };
        Assert.Equal(Difference.Gpa, ObservationComparer.Compare(a, Full, b, Full));
        Assert.Equal(Difference.None, ObservationComparer.Compare(a, Full, b, Oracle));
    }

    [Fact]
    public void UnknownPageSize_NotCompared()
    {
        var a = new Observation { Kind = OutcomeKind.Translated, Hpa = new Hpa(0x1000), PageSize = PageSize.Size2M };
        Assert.Equal(Difference.None, ObservationComparer.Compare(a, Full, a with { PageSize = 0 }, Full));
        Assert.Equal(Difference.PageSize, ObservationComparer.Compare(a, Full, a with { PageSize = PageSize.Size4K }, Full));
    }

    [Fact]
    public void Writes_CompareAsFinalValuesWhateverTheOrder()
    {
        var a = new Observation { Kind = OutcomeKind.Translated, Writes = [new(new Hpa(8), 0x100), new(new Hpa(16), 0x300)] };
        var b = a with { Writes = [new(new Hpa(16), 0x300), new(new Hpa(8), 0x100)] };
        var c = a with { Writes = [new(new Hpa(16), 0x100)] };
        Assert.Equal(Difference.None, ObservationComparer.Compare(a, Full, b, Full));
        Assert.Equal(Difference.AccessedDirty, ObservationComparer.Compare(a, Full, c, Full));
    }

    [Fact]
    public void Signature_NamesNoAddressAndIsStable()
    {
        var s = new DivergenceSignature("read.gpa", "model", "violation", "bochs", "violation", DivergenceSignature.DescribeFields(Difference.Qualification, 0x1));
        Assert.Equal("read.gpa|model:violation|bochs:violation|qual^0x1", s.ToString());
        Assert.Equal(s.Hash, new DivergenceSignature("read.gpa", "model", "violation", "bochs", "violation", "qual^0x1").Hash);
        Assert.NotEqual(s.Hash, new DivergenceSignature("read.gpa", "model", "violation", "bochs", "violation", "qual^0x2").Hash);
    }

    [Fact]
    public void KnownDivergences_ParseAndLocateErrors()
    {
        var text = "# comment\n\nread.gva|model:violation|bochs:violation|qual^0x1 Bochs sets only bit 1\nbad-line reason\nwrite.gpa|a:ok|b:ok|hpa\n";
        var (known, errors) = KnownDivergences.Parse(text, "kd.txt");
        Assert.Equal("Bochs sets only bit 1", known.ReasonFor("read.gva|model:violation|bochs:violation|qual^0x1"));
        Assert.Equal(2, errors.Count);
        Assert.StartsWith("kd.txt:4:1:", errors[0], StringComparison.Ordinal);
        Assert.StartsWith("kd.txt:5:", errors[1], StringComparison.Ordinal);
    }
}
