using EptFuzz.Contract;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Tests.Intent;

/// <summary>
/// The run-based <see cref="IntentModel"/> and the page-by-page <see cref="ReferenceIntentModel"/>,
/// driven with the same calls; every answer is compared and the first difference fails the test
/// with <see cref="Where"/> in the message.
/// </summary>
internal sealed class IntentTwin
{
    public IntentTwin(CpuCapabilities cpu)
    {
        Model = new IntentModel(cpu);
        Reference = new ReferenceIntentModel(cpu);
    }

    public IntentModel Model { get; }

    public ReferenceIntentModel Reference { get; }

    /// <summary>Names the case and step for failure messages.</summary>
    public string Where { get; set; } = string.Empty;

    public ApiResult Do(string what, Func<IntentModel, ApiResult> model, Func<ReferenceIntentModel, ApiResult> reference)
    {
        ApiResult expected = reference(Reference);
        ApiResult actual = model(Model);
        if (actual != expected)
        {
            Assert.Fail($"{Where} {what}: runs say {actual}, pages say {expected}");
        }

        Same(Reference.Count, Model.Count, "count");
        return actual;
    }

    public ApiResult Map(ulong gpa, ulong hpa, ulong size, EptPermissions permissions, MemoryType type, bool ignorePat) =>
        Do($"map 0x{gpa:x} 0x{hpa:x} 0x{size:x}", m => m.Map(gpa, hpa, size, permissions, type, ignorePat), r => r.Map(gpa, hpa, size, permissions, type, ignorePat));

    public ApiResult Unmap(ulong gpa, ulong size) => Do($"unmap 0x{gpa:x} 0x{size:x}", m => m.Unmap(gpa, size), r => r.Unmap(gpa, size));

    public ApiResult Protect(ulong gpa, ulong size, EptPermissions permissions) =>
        Do($"protect 0x{gpa:x} 0x{size:x}", m => m.Protect(gpa, size, permissions), r => r.Protect(gpa, size, permissions));

    public ApiResult Retype(ulong gpa, ulong size, MemoryType type, bool ignorePat) =>
        Do($"retype 0x{gpa:x} 0x{size:x}", m => m.Retype(gpa, size, type, ignorePat), r => r.Retype(gpa, size, type, ignorePat));

    public ApiResult Split(ulong gpa) => Do($"split 0x{gpa:x}", m => m.Split(gpa), r => r.Split(gpa));

    public ApiResult Merge(ulong gpa, ulong size) => Do($"merge 0x{gpa:x} 0x{size:x}", m => m.Merge(gpa, size), r => r.Merge(gpa, size));

    public ApiResult AddMemoryRange(ulong start, ulong end, MemoryType type) =>
        Do($"memory 0x{start:x}-0x{end:x}", m => m.AddMemoryRange(start, end, type), r => r.AddMemoryRange(start, end, type));

    public ApiResult IdentityMap(ulong offset, ulong offsetFrom) =>
        Do($"identity-map 0x{offset:x} from 0x{offsetFrom:x}", m => m.IdentityMap(offset, offsetFrom), r => r.IdentityMap(offset, offsetFrom));

    public void SetWalkLength(int length)
    {
        Model.SetWalkLength(length);
        Reference.SetWalkLength(length);
    }

    public void MarkUnknown(ulong start, ulong end)
    {
        Model.MarkUnknown(start, end);
        Reference.MarkUnknown(start, end);
    }

    public void MarkAllUnknown()
    {
        Model.MarkAllUnknown();
        Reference.MarkAllUnknown();
    }

    /// <summary>As the runner does after an operation: a range a raw write touched becomes unknown.</summary>
    public void ForgetIfUnknown(ulong from, ulong to)
    {
        bool known = Reference.IsKnownRange(from, to);
        Same(known, Model.IsKnownRange(from, to), $"known 0x{from:x}-0x{to:x}");
        if (!known)
        {
            MarkUnknown(from, to);
        }
    }

    public void LookupAt(ulong gpa)
    {
        Same(Reference.Lookup(gpa), Model.Lookup(gpa), $"lookup 0x{gpa:x}");
        Same(Reference.IsKnown(gpa), Model.IsKnown(gpa), $"known 0x{gpa:x}");
    }

    /// <summary>Looks up around a range: its edges, a page either side, its middle.</summary>
    public void LookupAround(ulong start, ulong size)
    {
        foreach (ulong gpa in (ReadOnlySpan<ulong>)[start - 4096, start - 1, start, start + 4095, start + size / 2, start + size - 1, start + size, start + size + 4096])
        {
            LookupAt(gpa);
        }
    }

    /// <summary>Looks up at the edges of every run (the places a wrong cut shows) and somewhere inside each.</summary>
    public void LookupAtRunEdges(Prng rng)
    {
        foreach (var run in Model.Runs)
        {
            ulong bytes = run.Size.Bytes();
            LookupAround(run.Gpa.Value, run.End - run.Gpa.Value);
            LookupAt(run.Gpa.Value + bytes);
            LookupAt(run.End - bytes - 1);
            LookupAt(run.Gpa.Value + rng.Below(run.End - run.Gpa.Value));
        }
    }

    /// <summary>Every page, where there are few enough to list.</summary>
    public void SamePages(int atMost)
    {
        if (Reference.Count <= atMost)
        {
            Same(string.Join(", ", Reference.Pages), string.Join(", ", Model.Pages), "pages");
        }
    }

    private void Same<T>(T expected, T actual, string what)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            Assert.Fail($"{Where} {what}: runs say {actual}, pages say {expected}");
        }
    }
}
