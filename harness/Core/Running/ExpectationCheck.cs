using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;

namespace EptFuzz.Harness.Running;

/// <summary>Does an observation satisfy a step's <c>=&gt;</c> expectation? Null when it does, else why not.</summary>
public static class ExpectationCheck
{
    public static string? Check(Expectation expectation, Observation o, TargetTraits traits, CpuCapabilities cpu, VmxControls controls)
    {
        if (traits.HasFlag(TargetTraits.SoftwareWalk))
        {
            // A software lookup says where an address is mapped, not what the access did: it is
            // compared with the baseline instead (ObservationComparer), never with an expectation.
            return null;
        }

        switch (expectation)
        {
            case TranslatedExpectation t:
                if (o.Kind != OutcomeKind.Translated)
                {
                    return $"expected ok, got {o.Kind.Text()}";
                }

                if (o.Hpa != t.Hpa)
                {
                    return $"expected hpa=0x{t.Hpa.Value:x}, got 0x{o.Hpa.Value:x}";
                }

                if (t.MemoryType is { } mt && traits.HasFlag(TargetTraits.MemoryType) && o.MemoryType != mt)
                {
                    return $"expected mt={mt.Text()}, got {o.MemoryType.Text()}";
                }

                if (t.Size is { } size && o.PageSize != 0 && o.PageSize.Bytes() != size)
                {
                    return $"expected size=0x{size:x}, got {o.PageSize.Text()}";
                }

                return null;

            case ViolationExpectation v:
                if (o.Kind != OutcomeKind.EptViolation)
                {
                    return $"expected violation, got {o.Kind.Text()}";
                }

                // Bits 9-11 compare only with adv-exit-info=1 and bit 6 only with the MBEC control on.
                ulong mask = ulong.MaxValue;
                if (!cpu.AdvancedExitInfo || !traits.HasFlag(TargetTraits.AdvancedExitInfo))
                {
                    mask &= ~ObservationComparer.AdvancedQualificationBits;
                }

                if (!controls.Mbec || !traits.HasFlag(TargetTraits.Mbec))
                {
                    mask &= ~ObservationComparer.MbecQualificationBits;
                }

                if (((o.Qualification ^ v.Qualification) & mask) != 0)
                {
                    return $"expected qual=0x{v.Qualification:x}, got 0x{o.Qualification:x} (compared bits 0x{mask & 0x1fff:x})";
                }

                if (v.Gpa is { } gpa && o.Gpa != gpa)
                {
                    return $"expected gpa=0x{gpa.Value:x}, got 0x{o.Gpa.Value:x}";
                }

                if (v.GuestLinearAddress is { } gla && (!o.GuestLinearAddressValid || o.GuestLinearAddress != gla.Value))
                {
                    return $"expected gla=0x{gla.Value:x}, got {(o.GuestLinearAddressValid ? $"0x{o.GuestLinearAddress:x}" : "an invalid gla")}";
                }

                return null;

            case MisconfigExpectation m:
                if (o.Kind != OutcomeKind.EptMisconfiguration)
                {
                    return $"expected misconfig, got {o.Kind.Text()}";
                }

                return m.Gpa is { } mg && o.Gpa != mg ? $"expected gpa=0x{mg.Value:x}, got 0x{o.Gpa.Value:x}" : null;

            case PageFaultExpectation p:
                if (o.Kind != OutcomeKind.GuestPageFault)
                {
                    return $"expected page-fault, got {o.Kind.Text()}";
                }

                return o.ErrorCode != p.ErrorCode ? $"expected code=0x{p.ErrorCode:x}, got 0x{o.ErrorCode:x}" : null;

            case EntryExpectation e:
                if (o.Kind != OutcomeKind.Entry)
                {
                    return $"expected entry, got {o.Kind.Text()}";
                }

                bool a = ((o.EntryValue >> 8) & 1) != 0, d = ((o.EntryValue >> 9) & 1) != 0;
                if (a != e.Accessed || d != e.Dirty)
                {
                    return $"expected a={(e.Accessed ? 1 : 0)} d={(e.Dirty ? 1 : 0)}, got a={(a ? 1 : 0)} d={(d ? 1 : 0)}";
                }

                return e.Value is { } value && value != o.EntryValue ? $"expected value=0x{value:x}, got 0x{o.EntryValue:x}" : null;

            case VmEntryExpectation ve:
                if (o.Kind != OutcomeKind.VmEntry)
                {
                    return $"expected vmentry, got {o.Kind.Text()}";
                }

                return o.VmEntryOk != ve.Ok ? $"expected vmentry {(ve.Ok ? "ok" : "fail")}, got {(o.VmEntryOk ? "ok" : "fail")}" : null;

            case ResultExpectation r:
                return $"an operation result ({r.Result}) cannot be expected of a probe";

            default:
                return $"unknown expectation {expectation.GetType().Name}";
        }
    }
}
